"""The learning-rate schedule of the paper's training: step through a list of rates on plateaus."""
from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass
class PlateauSchedule:
    """Step through ``rates`` when the validation loss stops improving.

    ``step(val_loss)`` returns False once the last rate has plateaued (stop).
    Its state is a plain dict so it can be checkpointed. Why not torch's
    ``ReduceLROnPlateau``: the paper steps through a list of rates (not a factor)
    and stops at the last plateau, which that scheduler cannot say.
    """

    rates: tuple
    patience: int
    min_delta: float
    index: int = 0
    best: float = math.inf
    bad_epochs: int = 0

    @property
    def lr(self) -> float:
        return self.rates[self.index]

    def step(self, val_loss: float) -> bool:
        if val_loss < self.best * (1 - self.min_delta):
            self.best = val_loss
            self.bad_epochs = 0
            return True
        self.bad_epochs += 1
        if self.bad_epochs > self.patience:
            if self.index + 1 >= len(self.rates):
                return False
            self.index += 1
            self.bad_epochs = 0
        return True

    def state_dict(self) -> dict:
        return {"index": self.index, "best": self.best, "bad_epochs": self.bad_epochs}

    def load_state_dict(self, state: dict) -> None:
        self.index = int(state["index"])
        self.best = float(state["best"])
        self.bad_epochs = int(state["bad_epochs"])
