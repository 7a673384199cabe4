-- Issue 15, rollback across a release phase. When a release's release phase (its `release:`
-- command) started, stamped before the command runs: a phase that failed half-way counts as
-- run, since its data changes (migrations) may be half-applied. Rows from before this
-- column have only the finished stamp, which implies a start.
ALTER TABLE releases ADD COLUMN release_phase_started_at TIMESTAMPTZ;
UPDATE releases SET release_phase_started_at = release_phase_finished_at
    WHERE release_phase_finished_at IS NOT NULL;
