-- Each build keeps its output, bounded by the builder's output budget.
ALTER TABLE builds ADD COLUMN log TEXT NOT NULL DEFAULT '';
