"""What a sync of the shards reached, and what that means for a model just written."""

from __future__ import annotations

from dataclasses import dataclass

from modelverse.serving.partition import shard_of


@dataclass(frozen=True)
class SyncReport:
    synced: int  # replicas that confirmed
    shards: int
    unserved: tuple[int, ...] = ()  # shards none of whose replicas confirmed

    def notice_for(self, model_id: str) -> str:
        """A finished job's caveat when its model's shard did not sync: the model is stored
        (the job succeeded) but not searchable until that shard is back."""
        shard = shard_of(model_id, self.shards)
        if shard not in self.unserved:
            return ""
        return (f"stored, not yet served on shard {shard}: none of its replicas answered; "
                "the model becomes searchable when the shard is back")
