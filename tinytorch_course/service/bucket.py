"""Each student's token bucket: `burst` submissions at once, then one more every `refill_seconds`.

PrairieLearn's users asked for this in place of a fixed cooldown: a student who has waited may send a
few in a row; one who keeps sending waits a little for each. The level is a float that refills
continuously and is stored with the time it was read (`store.py` keeps one row per student), so a
restart changes nothing. A submission takes one token when it is accepted; one the grader fails on for
its own reasons gets it back (`refund`).
"""

from dataclasses import dataclass


@dataclass(frozen=True)
class Bucket:
    "A student's bucket as stored: its level at `updated` (seconds since the epoch)."

    level: float
    updated: float

    def now(self, now: float, burst: int, refill_seconds: float) -> "Bucket":
        "The bucket at `now`: refilled for the time since `updated`, never past `burst`."
        gained = max(0.0, now - self.updated) / refill_seconds if refill_seconds > 0 else float(burst)
        return Bucket(min(float(burst), self.level + gained), max(now, self.updated))

    def take(self) -> "Bucket":
        if self.level < 1.0:
            raise ValueError("the bucket is empty")
        return Bucket(self.level - 1.0, self.updated)

    def refund(self, burst: int) -> "Bucket":
        return Bucket(min(float(burst), self.level + 1.0), self.updated)

    def wait(self, refill_seconds: float) -> float:
        "Seconds until the bucket holds one whole token (0 if it does)."
        return max(0.0, (1.0 - self.level) * refill_seconds)
