"""The steps of the bundled encoder's build (``tools/offline_encoder/build_encoder.py`` runs them).

1. ``sources``: the captioned samples, from data in registry packages (``registry_sources``) and
   drawn here (``drawn_sources``, ``concept_sources``); ``samples``: the sample and the held-out
   split.
2. ``training``: frozen towers (``towers``) and their cached features (``features``), then the
   trained heads.
3. ``evaluation``: held-out retrieval, the zero-shot sanity table, the zoo GAN checks.
4. ``packaging``: the bundle, ``held_out.json``, ``encoder_card.json``, the fresh-process check.

The scripts of this folder import it as ``encoder_build`` (Python puts a script's own folder on
the import path); nothing in ``services/`` or ``tests/`` imports it.
"""
