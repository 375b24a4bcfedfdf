//! A client of a running pipeline's admin API, for the commands that work
//! beside a run (`cutover`, `verify --follow`): the address and token come
//! from the run's admin file in the state directory.

use std::time::Duration;

use serde_json::Value as Json;

use super::guard::AdminFile;
use crate::config::Pipeline;

/// A running pipeline's admin API.
pub struct AdminClient {
    base: String,
    token: String,
    agent: ureq::Agent,
}

impl AdminClient {
    /// The admin API of the running `pipeline`; an error when it is not
    /// running with `--admin` (`why` says what needs a running sync).
    pub fn reach(pipeline: &Pipeline, why: &str) -> anyhow::Result<Self> {
        let path = AdminFile::path(&pipeline.state_dir, &pipeline.name);
        let f = AdminFile::read(&path).map_err(|e| {
            anyhow::anyhow!(
                "pipeline `{}` is not running with `--admin` (no readable `{}`: {e}): {why}",
                pipeline.name,
                path.display()
            )
        })?;
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(30)))
            .build()
            .into();
        Ok(AdminClient {
            base: format!("http://{}", f.addr),
            token: f.token,
            agent,
        })
    }

    /// `GET /status`.
    pub fn status(&self) -> anyhow::Result<Json> {
        let r = self
            .agent
            .get(format!("{}/status", self.base))
            .header("Authorization", format!("Bearer {}", self.token))
            .call();
        self.answer(r)
    }

    /// `POST path` with a JSON body.
    pub fn post(&self, path: &str, body: &Json) -> anyhow::Result<Json> {
        let r = self
            .agent
            .post(format!("{}{path}", self.base))
            .header("Authorization", format!("Bearer {}", self.token))
            .header("Content-Type", "application/json")
            .send(body.to_string());
        self.answer(r)
    }

    fn answer(
        &self,
        r: Result<ureq::http::Response<ureq::Body>, ureq::Error>,
    ) -> anyhow::Result<Json> {
        let mut r =
            r.map_err(|e| anyhow::anyhow!("cannot reach the admin API at {}: {e}", self.base))?;
        if !r.status().is_success() {
            anyhow::bail!("the admin API at {} answered {}", self.base, r.status());
        }
        let text = r.body_mut().read_to_string()?;
        serde_json::from_str(&text)
            .map_err(|e| anyhow::anyhow!("the admin API's answer is not JSON: {e}"))
    }
}

/// The source's lag in a status: seconds and bytes.
pub fn lag_of(status: &Json) -> Option<(f64, u64)> {
    let l = status.get("source")?.get("lag")?;
    Some((
        l.get("seconds")?.as_f64()?,
        l.get("bytes").and_then(Json::as_u64).unwrap_or(0),
    ))
}
