# Models logged before the move to lib/tracking/ pickle lib.scoring_model.ScoringModel: a process
# that has imported this lib (predict, promote) finds the class here when it unpickles them.
from lib.tracking.scoring_model import ScoringModel

__all__ = ["ScoringModel"]
