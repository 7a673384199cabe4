-- Issue 13. Request metrics the router counts, flushed here by the release manager that
-- serves it (every 10 s), for the dashboard's charts and /metrics.
--
-- request_minutes: per app per UTC minute (minutes since the Unix epoch), the requests, those
-- answered 5xx, and their latency histogram as the JSON of `domain::LatencyHistogram`
-- ({"b":[per-bucket counts],"s":sum in microseconds}). Flushes add to a minute's row; rows
-- older than two days are pruned by the flush.
CREATE TABLE request_minutes (
    app_id   BLOB NOT NULL REFERENCES apps (id) ON DELETE CASCADE,
    minute   INTEGER NOT NULL,
    requests INTEGER NOT NULL,
    errors   INTEGER NOT NULL,
    latency  TEXT NOT NULL,
    PRIMARY KEY (app_id, minute)
);
CREATE INDEX request_minutes_minute ON request_minutes (minute);

-- request_totals: per app, every request since the app was made, by status class, and the
-- cumulative latency histogram: Prometheus's counters, which pruning never decreases.
CREATE TABLE request_totals (
    app_id  BLOB PRIMARY KEY REFERENCES apps (id) ON DELETE CASCADE,
    s1xx    INTEGER NOT NULL,
    s2xx    INTEGER NOT NULL,
    s3xx    INTEGER NOT NULL,
    s4xx    INTEGER NOT NULL,
    s5xx    INTEGER NOT NULL,
    latency TEXT NOT NULL
);

-- router_totals: the platform's counters, every request the router answered, an app's or
-- not (unknown hosts): by status class ('1xx' … '5xx'), and 'dropped' for requests counted
-- but lost because nobody drained the router in time.
CREATE TABLE router_totals (
    name  TEXT PRIMARY KEY,
    value INTEGER NOT NULL
);
