//! Test runs: a build tested with its test plan, numbered per app, with the output kept.
//!
//! A run carries its own copy of the image, process types, command and environment, so it
//! is tested exactly as it was when the run was made (a push's build is still `running`
//! then). Its output is kept up to [`MAX_TEST_OUTPUT`] bytes.

use std::collections::BTreeMap;

use time::OffsetDateTime;
use uuid::Uuid;

use crate::db::{new_id, now, on_db, record_event};
use crate::{App, Error, Result, Store, User};

/// The most output bytes kept for one test run (as for a piece of work's output).
pub const MAX_TEST_OUTPUT: usize = 4 * 1024 * 1024;

/// What made a test run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TestCause {
    /// A push to the app's main branch, before its build counts as succeeded.
    Push,
    /// A push to `refs/slipway/ci`: tested, never released.
    CiRun,
    /// `POST /v1/apps/{app}/test-runs`: an existing build tested again.
    Api,
}

impl TestCause {
    pub fn as_str(self) -> &'static str {
        match self {
            TestCause::Push => "push",
            TestCause::CiRun => "ci-run",
            TestCause::Api => "api",
        }
    }

    fn parse(text: &str) -> Result<TestCause> {
        [TestCause::Push, TestCause::CiRun, TestCause::Api]
            .into_iter()
            .find(|c| c.as_str() == text)
            .ok_or_else(|| Error::corrupt(format!("test run cause {text:?}")))
    }
}

/// Where a test run is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TestStatus {
    Running,
    /// The command exited 0.
    Succeeded,
    /// The command exited non-zero.
    Failed,
    /// The command could not run or was cut off: nothing is known of the tests.
    Errored,
}

impl TestStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            TestStatus::Running => "running",
            TestStatus::Succeeded => "succeeded",
            TestStatus::Failed => "failed",
            TestStatus::Errored => "errored",
        }
    }

    fn parse(text: &str) -> Result<TestStatus> {
        [
            TestStatus::Running,
            TestStatus::Succeeded,
            TestStatus::Failed,
            TestStatus::Errored,
        ]
        .into_iter()
        .find(|s| s.as_str() == text)
        .ok_or_else(|| Error::corrupt(format!("test run status {text:?}")))
    }
}

/// A build and how to test it, for [`Store::create_test_run`].
#[derive(Debug, Clone)]
pub struct NewTestRun<'a> {
    pub build: Uuid,
    pub commit: Option<&'a str>,
    pub image: &'a str,
    pub procfile: &'a BTreeMap<String, String>,
    pub plan: &'a domain::TestPlan,
    pub cause: TestCause,
}

/// A test run. `output` is empty in lists; [`Store::test_run`] fills it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestRun {
    pub number: u64,
    pub build: Uuid,
    pub commit: Option<String>,
    pub image: String,
    pub procfile: BTreeMap<String, String>,
    pub command: String,
    /// The whole environment the command runs with: app.json's and the platform's.
    pub env: BTreeMap<String, String>,
    pub cause: TestCause,
    pub status: TestStatus,
    pub exit_status: Option<i32>,
    pub output: String,
    pub created_by: String,
    pub created_at: OffsetDateTime,
    pub finished_at: Option<OffsetDateTime>,
}

const TEST_RUN_COLUMNS: &str = "t.number, t.build_id, t.commit_sha, t.image, t.procfile, t.command, \
     t.env, t.cause, t.status, t.exit_status, u.username AS created_by, t.created_at, t.finished_at";

#[derive(sqlx::FromRow)]
struct TestRunRow {
    number: i64,
    build_id: Uuid,
    commit_sha: Option<String>,
    image: String,
    procfile: String,
    command: String,
    env: String,
    cause: String,
    status: String,
    exit_status: Option<i32>,
    output: String,
    created_by: String,
    created_at: OffsetDateTime,
    finished_at: Option<OffsetDateTime>,
}

impl TryFrom<TestRunRow> for TestRun {
    type Error = Error;

    fn try_from(row: TestRunRow) -> Result<TestRun> {
        Ok(TestRun {
            number: u64::try_from(row.number).map_err(Error::corrupt)?,
            build: row.build_id,
            commit: row.commit_sha,
            image: row.image,
            procfile: serde_json::from_str(&row.procfile).map_err(Error::corrupt)?,
            command: row.command,
            env: serde_json::from_str(&row.env).map_err(Error::corrupt)?,
            cause: TestCause::parse(&row.cause)?,
            status: TestStatus::parse(&row.status)?,
            exit_status: row.exit_status,
            output: row.output,
            created_by: row.created_by,
            created_at: row.created_at,
            finished_at: row.finished_at,
        })
    }
}

/// `output` cut to [`MAX_TEST_OUTPUT`] bytes at a character boundary, saying so.
fn bounded(output: &str) -> String {
    if output.len() <= MAX_TEST_OUTPUT {
        return output.to_owned();
    }
    const NOTE: &str = "\n(output cut off: test runs keep at most 4 MiB)\n";
    let mut end = MAX_TEST_OUTPUT - NOTE.len();
    while !output.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}{NOTE}", &output[..end])
}

impl Store {
    /// Records a running test run of `app`, numbered after its last, as `actor` asked.
    pub async fn create_test_run(
        &self,
        app: &App,
        run: &NewTestRun<'_>,
        actor: &User,
    ) -> Result<TestRun> {
        let procfile = serde_json::to_string(run.procfile).map_err(Error::corrupt)?;
        let number: i64 = on_db!(self, write, |pool| {
            let mut tx = pool.begin().await?;
            let (number,): (i64,) = sqlx::query_as(
                "UPDATE apps SET last_test_run = last_test_run + 1 WHERE id = $1 RETURNING last_test_run",
            )
            .bind(app.id)
            .fetch_optional(&mut *tx)
            .await?
            .ok_or_else(|| Error::NotFound(format!("app {}", app.name)))?;
            let env = run.plan.env_for(domain::TestRunFacts {
                app: app.name.as_str(),
                number: u64::try_from(number).map_err(Error::corrupt)?,
                commit: run.commit,
            });
            sqlx::query(
                "INSERT INTO test_runs (id, app_id, number, build_id, commit_sha, image, procfile, \
                 command, env, cause, status, created_by, created_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, 'running', $11, $12)",
            )
            .bind(new_id())
            .bind(app.id)
            .bind(number)
            .bind(run.build)
            .bind(run.commit)
            .bind(run.image)
            .bind(&procfile)
            .bind(&run.plan.command)
            .bind(serde_json::to_string(&env).map_err(Error::corrupt)?)
            .bind(run.cause.as_str())
            .bind(actor.id)
            .bind(now())
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            Ok::<_, Error>(number)
        })?;
        self.test_run(app, u64::try_from(number).map_err(Error::corrupt)?)
            .await
    }

    /// Records how a running test run ended, with its output (kept up to
    /// [`MAX_TEST_OUTPUT`]), and writes the event `ci.test`. `false`: it had ended already.
    pub async fn finish_test_run(
        &self,
        app: &App,
        number: u64,
        status: TestStatus,
        exit_status: Option<i32>,
        output: &str,
    ) -> Result<bool> {
        let number = i64::try_from(number).map_err(Error::corrupt)?;
        let output = bounded(output);
        on_db!(self, write, |pool| {
            let mut tx = pool.begin().await?;
            let row: Option<(String, Option<String>)> = sqlx::query_as(
                "UPDATE test_runs SET status = $1, exit_status = $2, output = $3, finished_at = $4 \
                 WHERE app_id = $5 AND number = $6 AND status = 'running' \
                 RETURNING (SELECT username FROM users WHERE id = created_by), commit_sha",
            )
            .bind(status.as_str())
            .bind(exit_status)
            .bind(&output)
            .bind(now())
            .bind(app.id)
            .bind(number)
            .fetch_optional(&mut *tx)
            .await?;
            let Some((actor, commit)) = row else {
                return Ok::<_, Error>(false);
            };
            let mut detail = format!("#{number} {}", status.as_str());
            if let Some(code) = exit_status {
                detail.push_str(&format!(" exit {code}"));
            }
            if let Some(commit) = commit {
                detail.push_str(&format!(" {}", &commit[..commit.len().min(7)]));
            }
            record_event!(&mut *tx, app: app.name.as_str(), actor: &actor, action: "ci.test", detail: &detail)?;
            tx.commit().await?;
            Ok(true)
        })
    }

    /// Keeps how to test a build, as its app.json and Procfile said, so it can be tested
    /// again later.
    pub async fn set_build_test_plan(
        &self,
        app: &App,
        build: Uuid,
        plan: &domain::TestPlan,
    ) -> Result<()> {
        let plan = serde_json::to_string(plan).map_err(Error::corrupt)?;
        let updated = on_db!(self, write, |pool| {
            sqlx::query("UPDATE builds SET test_plan = $1 WHERE id = $2 AND app_id = $3")
                .bind(&plan)
                .bind(build)
                .bind(app.id)
                .execute(pool)
                .await
                .map(|r| r.rows_affected())
        })?;
        if updated == 0 {
            return Err(Error::NotFound(format!("build {build} of {}", app.name)));
        }
        Ok(())
    }

    /// How to test a build of `app`; `None` when nothing said.
    pub async fn build_test_plan(
        &self,
        app: &App,
        build: Uuid,
    ) -> Result<Option<domain::TestPlan>> {
        let row: Option<(Option<String>,)> = on_db!(self, read, |pool| sqlx::query_as(
            "SELECT test_plan FROM builds WHERE id = $1 AND app_id = $2"
        )
        .bind(build)
        .bind(app.id)
        .fetch_optional(pool)
        .await)?;
        let (plan,) =
            row.ok_or_else(|| Error::NotFound(format!("build {build} of {}", app.name)))?;
        plan.map(|p| serde_json::from_str(&p).map_err(Error::corrupt))
            .transpose()
    }

    /// The test run `number` of `app`, with its output.
    pub async fn test_run(&self, app: &App, number: u64) -> Result<TestRun> {
        let number = i64::try_from(number).map_err(Error::corrupt)?;
        let sql = sqlx::AssertSqlSafe(format!(
            "SELECT {TEST_RUN_COLUMNS}, t.output FROM test_runs t JOIN users u ON u.id = t.created_by \
             WHERE t.app_id = $1 AND t.number = $2"
        ));
        let row: Option<TestRunRow> = on_db!(self, read, |pool| sqlx::query_as(sql)
            .bind(app.id)
            .bind(number)
            .fetch_optional(pool)
            .await)?;
        row.ok_or_else(|| Error::NotFound(format!("test run {number} of {}", app.name)))?
            .try_into()
    }

    /// The newest `limit` test runs of `app`, newest first, without their output.
    pub async fn test_runs(&self, app: &App, limit: u32) -> Result<Vec<TestRun>> {
        let sql = sqlx::AssertSqlSafe(format!(
            "SELECT {TEST_RUN_COLUMNS}, '' AS output FROM test_runs t \
             JOIN users u ON u.id = t.created_by \
             WHERE t.app_id = $1 ORDER BY t.number DESC LIMIT $2"
        ));
        let rows: Vec<TestRunRow> = on_db!(self, read, |pool| sqlx::query_as(sql)
            .bind(app.id)
            .bind(i64::from(limit))
            .fetch_all(pool)
            .await)?;
        rows.into_iter().map(TestRun::try_from).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_is_cut_at_a_character_boundary() {
        assert_eq!(bounded("short"), "short");
        let long = "é".repeat(MAX_TEST_OUTPUT);
        let cut = bounded(&long);
        assert!(cut.len() <= MAX_TEST_OUTPUT, "{}", cut.len());
        assert!(cut.ends_with("keep at most 4 MiB)\n"));
    }
}
