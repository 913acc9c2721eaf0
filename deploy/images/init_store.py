#!/opt/venv/bin/python
"""Create an empty model store for the configured encoder, once (compose's store-init service,
the chart's init container of the admin). The shards open an existing store only, and every
model the admin or the fleet adds must come from the store's encoder, so the store is created
with that encoder's identity, dimension and temperature before anything else starts.

Usage: modelverse-init-store STORE_DIR [ENCODER_SPEC]   (spec default: $MODELVERSE_ENCODER or bundled)
"""

from __future__ import annotations

import sys
from pathlib import Path

from modelverse.core.stats import DEFAULT_TAU
from modelverse.encoders import encoder_id, load_encoder
from modelverse.store.directory import DirectoryStore, StoreConfig


def main(argv: list[str]) -> int:
    if not 1 <= len(argv) <= 2:
        print(__doc__, file=sys.stderr)
        return 2
    root = Path(argv[0])
    if (root / "store.json").exists():
        store = DirectoryStore.open(root)
        print(f"{root}: store exists (encoder {store.config.encoder or 'unnamed'}, dim {store.config.dim})")
        return 0
    encoder = load_encoder(argv[1] if len(argv) == 2 else None)
    temperature = getattr(encoder, "temperature", None)
    config = StoreConfig(dim=encoder.dim, encoder=encoder_id(encoder),
                         tau=DEFAULT_TAU if temperature is None else temperature)
    DirectoryStore.open_or_create(root, config)
    print(f"{root}: created for encoder {config.encoder}, dim {config.dim}, tau {config.tau:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
