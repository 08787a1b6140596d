"""The SQL that the two engine-written generative cases share (``bench_generative_all.py``
and ``bench_generative_mix.py``): feedback labels and the incident's events.

Both write 24 hours of requests from ``hash(k, salt)`` draws, so the same SQL gives the same
case on every run; at hour 12 model ``m2`` takes traffic with more bad feedback, a config change
sets ``temperature`` 1.1 and ``max_tokens`` 256, and client ``c2`` is deployed.
"""

from __future__ import annotations

__all__ = ["START", "BASELINE", "INCIDENT", "DRAWS", "LABELS", "EVENTS"]

START = "2026-03-01 00:00:00+00"
BASELINE = "2026-03-01T00:00:00Z/2026-03-01T12:00:00Z"
INCIDENT = "2026-03-01T12:00:00Z/2026-03-02T00:00:00Z"

#: The first two CTEs of the requests' ``INSERT``: one row per request ``k`` of ``$n``, spread
#: evenly over 24 hours from ``{start}``; ``after`` is the incident half; ``u1``..``u7`` are
#: uniform draws from ``hash(k, salt)``; ``drawn`` adds the adapter (``rag`` 20% -> 50%),
#: the client (``c2`` on 60% of the incident) and the model (``m2`` on half of it).
DRAWS = """WITH base AS (
  SELECT k, TIMESTAMPTZ '{start}' + to_microseconds((k * 86400000000 // $n)::BIGINT) AS ts,
         k >= $n // 2 AS after,
         (hash(k, 1) % 1000000) / 1e6 AS u1, (hash(k, 2) % 1000000) / 1e6 AS u2,
         (hash(k, 3) % 1000000) / 1e6 AS u3, (hash(k, 4) % 1000000) / 1e6 AS u4,
         (hash(k, 5) % 1000000) / 1e6 AS u5, (hash(k, 6) % 1000000) / 1e6 AS u6,
         (hash(k, 7) % 1000000) / 1e6 AS u7
  FROM range($n) t(k)
), drawn AS (
  SELECT *, CASE WHEN u1 < (CASE WHEN after THEN 0.5 ELSE 0.2 END) THEN 'rag' ELSE 'chat' END
              AS adapter,
         CASE WHEN after AND u2 < 0.6 THEN 'c2' ELSE 'c1' END AS client,
         CASE WHEN after AND u3 < 0.5 THEN 'm2' ELSE 'm1' END AS model
  FROM base
"""

#: A good/bad label, an hour after the request, on one request in five (``hash(id, 7)``):
#: bad 10% of the time, 25% on model ``m2``.
LABELS = """
INSERT INTO labels (request_id, label, labeled_at, load_id)
SELECT request_id, CASE WHEN (hash(request_id) % 1000) / 1000.0
                             < CASE WHEN model_version = 'm2' THEN 0.25 ELSE 0.1 END
                        THEN 'bad' ELSE 'good' END, ts + INTERVAL 1 HOUR, 0
FROM requests WHERE hash(request_id, 7) % 5 = 0
"""
#: The config change and the new client's deploy, both at hour 12.
EVENTS = (
    "INSERT INTO events (ts, kind, artifact, version, detail, load_id) VALUES "
    "(TIMESTAMPTZ '2026-03-01 12:00:00+00', 'config_change', 'service', NULL, "
    "'{\"temperature\": 1.1, \"max_tokens\": 256}', 0), "
    "(TIMESTAMPTZ '2026-03-01 12:00:00+00', 'deploy', 'client', 'c2', NULL, 0)"
)
