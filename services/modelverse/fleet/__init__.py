"""The indexing fleet: turn registered generative models into their statistics.

A model's samples are split into chunks (``plan``); each chunk is sampled with a seed derived
from (model id, stats version, chunk index), encoded, L2-normalised and reduced to a
:class:`~modelverse.core.moments.PartialMoments` stored under an idempotent key (``work``).
A round's chord callback merges the partials in chunk order and either finalises the model or,
with adaptive sampling, asks for another round (``adaptive``). The same work functions run in
Celery workers on Redis (``app``, ``tasks``, ``submit``) and in one process with nothing else
running (``embedded``).
"""
