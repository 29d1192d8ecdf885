//! The Job controller, as kube-controller-manager's `job` controller does it in v1.32 (with the
//! JobPodReplacementPolicy behaviour that is on by default there).
//!
//! - **Pods** `<job>-<random>` (Indexed: `<job>-<index>-<random>` with the `batch.kubernetes.io/
//!   job-completion-index` annotation and label, hostname `<job>-<index>` and `JOB_COMPLETION_INDEX`), labelled
//!   by the template (the API server already added `batch.kubernetes.io/job-name` and `controller-uid`), owned by
//!   the Job and carrying the `batch.kubernetes.io/job-tracking` finalizer.
//! - **Exact counting** with that finalizer: a finished pod's uid goes to `status.uncountedTerminatedPods` first,
//!   then its finalizer is removed, then it moves to `succeeded`/`failed`; the Job is read from the API (not the
//!   cache) and removed finalizers are remembered until the pod cache shows them, so no pod is counted twice.
//!   A pod deleted before it finished counts as failed (`podReplacementPolicy: TerminatingOrFailed`).
//! - **Parallelism**: `min(parallelism, completions - succeeded)` pods run (work-queue Jobs without completions:
//!   `parallelism` until one succeeds); after failures new pods wait 10 s doubling to 6 min.
//! - **Failure**: more failed pods than `backoffLimit` (or, with `restartPolicy: OnFailure`, that many container
//!   restarts) or running past `activeDeadlineSeconds` adds `FailureTarget` (`BackoffLimitExceeded` /
//!   `DeadlineExceeded`), deletes the active pods, and once none is left adds `Failed`.
//! - **Success**: enough succeeded pods (Indexed: every index, in `completedIndexes`) adds `SuccessCriteriaMet`
//!   and, once every pod is counted, `Complete` with `completionTime`; `kubectl wait --for=condition=complete`
//!   works on it.
//! - `suspend` deletes active pods and sets `Suspended`; `ttlSecondsAfterFinished` deletes a finished Job.
//!
//! Not done: `podFailurePolicy` rules (a policy only changes which pods count as failed, as in Kubernetes),
//! `successPolicy`, `backoffLimitPerIndex`/`maxFailedIndexes`, `managedBy`, slow-start batching of creations.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};
use tracing::Instrument;

use super::statefulset::owner_keys;
use super::statefulset::workload;
use super::{Informers, Queue, event, feed, key_of, res, run_worker};
use crate::api::Api;
use crate::api::object::{format_time, meta_str};
use crate::api::request::Query;

/// The finalizer that keeps a Job's pod until the Job counted it.
pub const TRACKING_FINALIZER: &str = "batch.kubernetes.io/job-tracking";
/// The annotation and label with an Indexed Job pod's completion index.
pub const COMPLETION_INDEX: &str = "batch.kubernetes.io/job-completion-index";
/// The first delay before re-creating a pod after a failure.
const DEFAULT_BACKOFF: Duration = Duration::from_secs(10);
/// The longest such delay.
const MAX_BACKOFF: Duration = Duration::from_secs(360);
/// Event source.
const COMPONENT: &str = "job-controller";

/// Start the controller.
pub fn spawn(api: Arc<Api>, inf: Arc<Informers>) {
    let (queue, rx) = Queue::new();
    feed(&inf.jobs, queue.clone(), |c| {
        c.object().map(|o| key_of(o)).into_iter().collect()
    });
    feed(&inf.pods, queue.clone(), |c| owner_keys(c, "Job"));
    for j in inf.jobs.list(None) {
        queue.add(key_of(&j));
    }
    let ctl = Arc::new(Controller {
        api,
        inf,
        expected_removals: Mutex::new(HashMap::new()),
    });
    tokio::spawn(run_worker("job", queue, rx, move |key| {
        let ctl = ctl.clone();
        async move {
            ctl.reconcile(&key)
                .instrument(tracing::info_span!("job", key = %key))
                .await
        }
    }));
}

// ---- Pure logic ---------------------------------------------------------------------------------------------

/// A Job condition as the controller writes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cond {
    /// `Complete`, `Failed`, `SuccessCriteriaMet`, `FailureTarget`.
    pub type_: &'static str,
    /// Reason.
    pub reason: String,
    /// Message.
    pub message: String,
}

impl Cond {
    fn new(type_: &'static str, reason: &str, message: &str) -> Self {
        Self {
            type_,
            reason: reason.into(),
            message: message.into(),
        }
    }

    /// The terminal condition an interim one leads to.
    fn terminal(&self) -> Self {
        let type_ = match self.type_ {
            "SuccessCriteriaMet" | "Complete" => "Complete",
            _ => "Failed",
        };
        Self { type_, ..self.clone() }
    }

    fn is_success(&self) -> bool {
        matches!(self.type_, "SuccessCriteriaMet" | "Complete")
    }

    fn to_json(&self, now: &str) -> Value {
        json!({"type": self.type_, "status": "True", "lastProbeTime": now, "lastTransitionTime": now,
               "reason": self.reason, "message": self.message})
    }
}

/// The condition of `type_` if it is True.
fn true_condition<'a>(job: &'a Value, type_: &str) -> Option<&'a Value> {
    job.pointer("/status/conditions")
        .and_then(Value::as_array)
        .and_then(|c| c.iter().find(|c| c["type"] == type_ && c["status"] == "True"))
}

/// Finished: `Complete` or `Failed` is True (`IsJobFinished`).
pub fn is_finished(job: &Value) -> bool {
    true_condition(job, "Complete").is_some() || true_condition(job, "Failed").is_some()
}

fn spec_i64(job: &Value, field: &str) -> Option<i64> {
    job.pointer(&format!("/spec/{field}")).and_then(Value::as_i64)
}

fn suspended(job: &Value) -> bool {
    job.pointer("/spec/suspend").and_then(Value::as_bool) == Some(true)
}

fn indexed(job: &Value) -> bool {
    job.pointer("/spec/completionMode").and_then(Value::as_str) == Some("Indexed")
}

/// `onlyReplaceFailedPods`: terminating pods are not replaced (nor counted failed) until they reach Failed.
fn only_replace_failed(job: &Value) -> bool {
    job.pointer("/spec/podReplacementPolicy").and_then(Value::as_str) == Some("Failed")
        || job.pointer("/spec/podFailurePolicy").is_some_and(|p| !p.is_null())
}

/// `isPodFailed`: Failed, or (unless only failed pods are replaced) deleted before it succeeded.
pub fn is_failed(job: &Value, pod: &Value) -> bool {
    if workload::phase(pod) == "Failed" {
        return true;
    }
    !only_replace_failed(job) && workload::is_terminating(pod) && workload::phase(pod) != "Succeeded"
}

/// Active: neither finished nor being deleted (`FilterActivePods`).
pub fn is_active(pod: &Value) -> bool {
    !workload::is_terminal(pod) && !workload::is_terminating(pod)
}

/// A pod's completion index, if it has a valid one below `completions`.
pub fn completion_index(pod: &Value, completions: i64) -> Option<i64> {
    let raw = pod
        .pointer("/metadata/annotations")
        .and_then(|a| a[COMPLETION_INDEX].as_str())
        .or_else(|| {
            pod.pointer("/metadata/labels")
                .and_then(|l| l[COMPLETION_INDEX].as_str())
        })?;
    raw.parse::<i64>().ok().filter(|i| (0..completions).contains(i))
}

/// Parse `completedIndexes` (`1,3-5`).
pub fn parse_indexes(s: &str, completions: i64) -> BTreeSet<i64> {
    let mut out = BTreeSet::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (a, b) = part.split_once('-').unwrap_or((part, part));
        if let (Ok(a), Ok(b)) = (a.parse::<i64>(), b.parse::<i64>()) {
            out.extend((a..=b).filter(|i| (0..completions).contains(i)));
        }
    }
    out
}

/// Format indexes as `completedIndexes` does: ascending, consecutive runs as `a-b`.
pub fn format_indexes(ix: &BTreeSet<i64>) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut run: Option<(i64, i64)> = None;
    for &i in ix {
        run = match run {
            Some((a, b)) if i == b + 1 => Some((a, i)),
            Some((a, b)) => {
                parts.push(if a == b { a.to_string() } else { format!("{a}-{b}") });
                Some((i, i))
            }
            None => Some((i, i)),
        };
    }
    if let Some((a, b)) = run {
        parts.push(if a == b { a.to_string() } else { format!("{a}-{b}") });
    }
    parts.join(",")
}

/// When a pod finished: its containers' last `finishedAt`, else its deletion or Ready transition time.
fn finish_time(pod: &Value) -> Option<jiff::Timestamp> {
    let containers = pod
        .pointer("/status/containerStatuses")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|c| c.pointer("/state/terminated/finishedAt").and_then(Value::as_str))
        .filter_map(workload::parse_time)
        .max();
    containers
        .or_else(|| meta_str(pod, "deletionTimestamp").and_then(workload::parse_time))
        .or_else(|| {
            pod.pointer("/status/conditions")
                .and_then(Value::as_array)
                .and_then(|c| c.iter().find(|c| c["type"] == "Ready"))
                .and_then(|c| c["lastTransitionTime"].as_str())
                .and_then(workload::parse_time)
        })
}

/// How long to wait before creating pods again after failures (the pod backoff record): 10 s doubling per failure
/// since the last success, at most 6 min, counted from the last failure.
pub fn backoff_remaining(job: &Value, pods: &[Arc<Value>], now: jiff::Timestamp) -> Duration {
    let last_success = pods
        .iter()
        .filter(|p| workload::phase(p) == "Succeeded")
        .filter_map(|p| finish_time(p))
        .max();
    let failures: Vec<jiff::Timestamp> = pods
        .iter()
        .filter(|p| is_failed(job, p))
        .map(|p| finish_time(p).unwrap_or(now))
        .filter(|t| last_success.is_none_or(|s| *t > s))
        .collect();
    let Some(last_failure) = failures.iter().max() else {
        return Duration::ZERO;
    };
    let exp = u32::try_from(failures.len().saturating_sub(1))
        .unwrap_or(u32::MAX)
        .min(16);
    let delay = DEFAULT_BACKOFF.saturating_mul(1 << exp).min(MAX_BACKOFF);
    let elapsed = Duration::try_from(now.duration_since(*last_failure)).unwrap_or(Duration::ZERO);
    delay.saturating_sub(elapsed)
}

/// `pastBackoffLimitOnFailure`: with `restartPolicy: OnFailure`, container restarts of running or pending pods
/// reach `backoffLimit` (any restart when the limit is 0).
pub fn past_backoff_on_failure(job: &Value, pods: &[Arc<Value>]) -> bool {
    if job.pointer("/spec/template/spec/restartPolicy").and_then(Value::as_str) != Some("OnFailure") {
        return false;
    }
    let restarts: i64 = pods
        .iter()
        .filter(|p| matches!(workload::phase(p), "Running" | "Pending"))
        .flat_map(|p| {
            ["initContainerStatuses", "containerStatuses"]
                .into_iter()
                .flat_map(move |k| {
                    p.pointer(&format!("/status/{k}"))
                        .and_then(Value::as_array)
                        .into_iter()
                        .flatten()
                        .map(|c| c["restartCount"].as_i64().unwrap_or(0))
                })
        })
        .sum();
    let limit = spec_i64(job, "backoffLimit").unwrap_or(6);
    if limit == 0 { restarts > 0 } else { restarts >= limit }
}

/// Seconds left before `activeDeadlineSeconds` runs out (`None` without a deadline or start time).
pub fn deadline_remaining(job: &Value, start: Option<jiff::Timestamp>, now: jiff::Timestamp) -> Option<Duration> {
    let secs = spec_i64(job, "activeDeadlineSeconds")?;
    let start = start?;
    let end = start + jiff::SignedDuration::from_secs(secs);
    Some(Duration::try_from(end.duration_since(now)).unwrap_or(Duration::ZERO))
}

/// How many pods should be active (`manageJob`'s `wantActive`) given the succeeded count.
pub fn want_active(job: &Value, succeeded: i64, active: i64) -> i64 {
    let parallelism = spec_i64(job, "parallelism").unwrap_or(1).max(0);
    match spec_i64(job, "completions") {
        None if succeeded > 0 => active,
        None => parallelism,
        Some(c) => (c - succeeded).clamp(0, parallelism),
    }
}

/// The pod for a Job (and completion index).
pub fn new_pod(job: &Value, index: Option<i64>) -> Value {
    let name = meta_str(job, "name").unwrap_or("");
    let template = job.pointer("/spec/template").cloned().unwrap_or(json!({}));
    let mut pod = workload::pod_from_template(&template, workload::owner_reference(job, "batch/v1", "Job"));
    let mut fins: Vec<Value> = pod["metadata"]["finalizers"].as_array().cloned().unwrap_or_default();
    if !fins.iter().any(|f| f == TRACKING_FINALIZER) {
        fins.push(json!(TRACKING_FINALIZER));
    }
    pod["metadata"]["finalizers"] = json!(fins);
    match index {
        None => pod["metadata"]["generateName"] = json!(format!("{name}-")),
        Some(i) => {
            pod["metadata"]["generateName"] = json!(format!("{name}-{i}-"));
            if !pod["metadata"]["annotations"].is_object() {
                pod["metadata"]["annotations"] = json!({});
            }
            pod["metadata"]["annotations"][COMPLETION_INDEX] = json!(i.to_string());
            pod["metadata"]["labels"][COMPLETION_INDEX] = json!(i.to_string());
            if pod["spec"]["hostname"].as_str().is_none_or(str::is_empty) {
                pod["spec"]["hostname"] = json!(format!("{name}-{i}"));
            }
            let env = json!({"name": "JOB_COMPLETION_INDEX", "valueFrom": {"fieldRef": {
                "apiVersion": "v1", "fieldPath": format!("metadata.labels['{COMPLETION_INDEX}']")}}});
            for list in ["initContainers", "containers"] {
                if let Some(cs) = pod["spec"][list].as_array_mut() {
                    for c in cs {
                        let mut vars: Vec<Value> = c["env"].as_array().cloned().unwrap_or_default();
                        if !vars.iter().any(|v| v["name"] == "JOB_COMPLETION_INDEX") {
                            vars.push(env.clone());
                        }
                        c["env"] = json!(vars);
                    }
                }
            }
        }
    }
    pod
}

/// Which active pods to delete when too many run: not ready first, then the newest (`ActivePods` order, reversed).
fn removal_order(pods: &mut [&Arc<Value>]) {
    pods.sort_by(|a, b| {
        workload::is_ready(a)
            .cmp(&workload::is_ready(b))
            .then_with(|| workload::created_at(b).cmp(&workload::created_at(a)))
    });
}

// ---- The controller -----------------------------------------------------------------------------------------

struct Controller {
    api: Arc<Api>,
    inf: Arc<Informers>,
    /// Per Job: uids of pods whose finalizer this controller removed and whose update the cache has not shown.
    expected_removals: Mutex<HashMap<String, HashSet<String>>>,
}

/// What `manage` did.
#[derive(Default)]
struct Managed {
    created: i64,
    deleted: i64,
    deleted_ready: i64,
    requeue: Option<Duration>,
}

impl Controller {
    fn job_res() -> &'static api_core::registry::ResourceDef {
        res("batch/v1", "Job")
    }

    async fn reconcile(&self, key: &str) -> Result<Option<Duration>, String> {
        let (ns, name) = key.split_once('/').unwrap_or(("", key));
        // Read the Job itself, not the cache: the counters in its status must never go back.
        let job = match self.api.read(Self::job_res(), Some(ns), name).await {
            Ok(j) => j,
            Err(e) if e.code == 404 => {
                self.expected(key, |s| s.clear());
                self.release_orphans(ns, name, None).await;
                return Ok(None);
            }
            Err(e) => return Err(format!("reading job {key}: {}", e.message)),
        };
        let uid = meta_str(&job, "uid").unwrap_or("").to_string();
        self.release_orphans(ns, name, Some(&uid)).await;
        let pods: Vec<Arc<Value>> = self
            .inf
            .pods
            .list(Some(ns))
            .into_iter()
            .filter(|p| workload::controller_uid(p) == Some(uid.as_str()))
            .collect();
        // Forget removals the cache now shows.
        let with_finalizer: HashSet<String> = pods
            .iter()
            .filter(|p| has_tracking_finalizer(p))
            .filter_map(|p| meta_str(p, "uid").map(str::to_string))
            .collect();
        self.expected(key, |s| s.retain(|u| with_finalizer.contains(u)));
        let expected = self.expected(key, |s| s.clone());
        let tracked =
            |p: &Value| has_tracking_finalizer(p) && !meta_str(p, "uid").is_some_and(|u| expected.contains(u));

        if is_finished(&job) {
            // Nothing left to count; let any pod still holding the finalizer go.
            for p in pods.iter().filter(|p| tracked(p)) {
                self.remove_finalizer(key, p).await;
            }
            return self.expire(&job).await;
        }
        self.sync(key, &job, &pods, &tracked).await
    }

    /// Run `f` on this Job's set of expected finalizer removals.
    fn expected<T>(&self, key: &str, f: impl FnOnce(&mut HashSet<String>) -> T) -> T {
        let mut m = self.expected_removals.lock().unwrap_or_else(|p| p.into_inner());
        let set = m.entry(key.to_string()).or_default();
        let out = f(set);
        if set.is_empty() {
            m.remove(key);
        }
        out
    }

    async fn sync(
        &self,
        key: &str,
        job: &Value,
        pods: &[Arc<Value>],
        tracked: &(dyn Fn(&Value) -> bool + Sync),
    ) -> Result<Option<Duration>, String> {
        let now = jiff::Timestamp::now();
        let now_s = format_time(now);
        let completions = spec_i64(job, "completions");
        let is_indexed = indexed(job) && completions.is_some();
        let mut st = job.get("status").cloned().filter(Value::is_object).unwrap_or(json!({}));
        let uncounted = |k: &str| -> Vec<String> {
            job.pointer(&format!("/status/uncountedTerminatedPods/{k}"))
                .and_then(Value::as_array)
                .map(|a| a.iter().filter_map(Value::as_str).map(str::to_string).collect())
                .unwrap_or_default()
        };
        let mut unc_succeeded = uncounted("succeeded");
        let mut unc_failed = uncounted("failed");
        let uid_of = |p: &Value| meta_str(p, "uid").unwrap_or("").to_string();
        let is_uncounted = |u: &String| unc_succeeded.contains(u) || unc_failed.contains(u);

        let active_pods: Vec<&Arc<Value>> = pods.iter().filter(|p| is_active(p)).collect();
        let mut active = i64::try_from(active_pods.len()).unwrap_or(i64::MAX);
        let mut ready = i64::try_from(active_pods.iter().filter(|p| workload::is_ready(p)).count()).unwrap_or(0);
        let mut terminating = i64::try_from(
            pods.iter()
                .filter(|p| workload::is_terminating(p) && !workload::is_terminal(p))
                .count(),
        )
        .unwrap_or(0);
        let new_succeeded = pods
            .iter()
            .filter(|p| tracked(p) && workload::phase(p) == "Succeeded" && !is_uncounted(&uid_of(p)))
            .count();
        let new_failed = pods
            .iter()
            .filter(|p| tracked(p) && is_failed(job, p) && !is_uncounted(&uid_of(p)))
            .count();
        let counted_succeeded = st.get("succeeded").and_then(Value::as_i64).unwrap_or(0);
        let counted_failed = st.get("failed").and_then(Value::as_i64).unwrap_or(0);
        let as_i64 = |n: usize| i64::try_from(n).unwrap_or(i64::MAX);
        let mut succeeded = counted_succeeded + as_i64(new_succeeded + unc_succeeded.len());
        let failed = counted_failed + as_i64(new_failed + unc_failed.len());
        let mut succeeded_indexes = BTreeSet::new();
        if let (true, Some(c)) = (is_indexed, completions) {
            succeeded_indexes = parse_indexes(st["completedIndexes"].as_str().unwrap_or(""), c);
            succeeded_indexes.extend(
                pods.iter()
                    .filter(|p| workload::phase(p) == "Succeeded")
                    .filter_map(|p| completion_index(p, c)),
            );
            succeeded = as_i64(succeeded_indexes.len());
        }
        if st.get("startTime").is_none_or(Value::is_null) && !suspended(job) {
            st["startTime"] = json!(now_s);
        }
        let start = st["startTime"].as_str().and_then(workload::parse_time);

        let mut requeue: Option<Duration> = None;
        let mut finished: Option<Cond> = None;
        if let Some(c) = true_condition(job, "SuccessCriteriaMet") {
            finished = Some(Cond::new(
                "SuccessCriteriaMet",
                c["reason"].as_str().unwrap_or(""),
                c["message"].as_str().unwrap_or(""),
            ));
        } else if let Some(c) = true_condition(job, "FailureTarget") {
            finished = Some(Cond::new(
                "FailureTarget",
                c["reason"].as_str().unwrap_or(""),
                c["message"].as_str().unwrap_or(""),
            ));
        } else if failed > spec_i64(job, "backoffLimit").unwrap_or(6) || past_backoff_on_failure(job, pods) {
            finished = Some(Cond::new(
                "FailureTarget",
                "BackoffLimitExceeded",
                "Job has reached the specified backoff limit",
            ));
        } else if !suspended(job)
            && let Some(left) = deadline_remaining(job, start, now)
        {
            if left.is_zero() {
                finished = Some(Cond::new(
                    "FailureTarget",
                    "DeadlineExceeded",
                    "Job was active longer than specified deadline",
                ));
            } else {
                requeue = Some(left);
            }
        }

        if finished.as_ref().is_some_and(|f| !f.is_success()) {
            // A failing Job's active pods go (their finalizers are removed below, counting them failed).
            let m = self.delete_pods(job, &active_pods, "job failing").await;
            active -= m.deleted;
            ready -= m.deleted_ready;
            terminating += m.deleted;
        } else if finished.is_none() {
            if !workload::is_terminating(job) {
                let m = self
                    .manage(job, pods, &active_pods, succeeded, &succeeded_indexes, now)
                    .await?;
                active += m.created - m.deleted;
                ready -= m.deleted_ready;
                terminating += m.deleted;
                requeue = match (requeue, m.requeue) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                };
            }
            let complete = match completions {
                None => succeeded > 0 && active == 0,
                Some(c) => succeeded >= c && active == 0,
            };
            if complete {
                finished = Some(Cond::new(
                    "SuccessCriteriaMet",
                    "CompletionsReached",
                    "Reached expected number of succeeded pods",
                ));
            } else {
                self.suspend_condition(job, &mut st, &now_s);
            }
        }
        st["active"] = json!(active);
        st["ready"] = json!(ready);
        st["terminating"] = json!(terminating);

        // Count finished pods: uncounted first, then remove finalizers, then move to the counters.
        let failing = finished.as_ref().is_some_and(|f| !f.is_success());
        let mut release: Vec<&Arc<Value>> = Vec::new();
        for p in pods.iter().filter(|p| tracked(p)) {
            let pod_failed = is_failed(job, p);
            let can_remove =
                workload::is_terminating(job) || finished.is_some() || workload::phase(p) == "Succeeded" || pod_failed;
            if !can_remove {
                continue;
            }
            release.push(p);
            let u = uid_of(p);
            if workload::phase(p) == "Succeeded" && !unc_failed.contains(&u) {
                if !is_indexed && !unc_succeeded.contains(&u) {
                    unc_succeeded.push(u);
                }
            } else if (pod_failed || failing) && !unc_failed.contains(&u) {
                let counts = match (is_indexed, completions) {
                    (true, Some(c)) => completion_index(p, c).is_some(),
                    _ => true,
                };
                if counts {
                    unc_failed.push(u);
                }
            }
        }
        if let (true, Some(_)) = (is_indexed, completions) {
            st["succeeded"] = json!(succeeded);
            st["completedIndexes"] = json!(format_indexes(&succeeded_indexes));
        }
        st["uncountedTerminatedPods"] = uncounted_json(&unc_succeeded, &unc_failed);
        let mut conditions: Vec<Value> = st["conditions"].as_array().cloned().unwrap_or_default();
        if let Some(f) = &finished
            && !conditions.iter().any(|c| c["type"] == f.type_ && c["status"] == "True")
        {
            conditions.push(f.to_json(&now_s));
        }
        set_conditions(&mut st, conditions.clone());
        self.write_status(job, &st).await?;

        let mut removed: HashSet<String> = HashSet::new();
        for p in &release {
            if self.remove_finalizer(key, p).await {
                removed.insert(uid_of(p));
            }
        }
        let still_tracked: HashSet<String> = pods
            .iter()
            .filter(|p| tracked(p))
            .map(|p| uid_of(p))
            .filter(|u| !removed.contains(u))
            .collect();
        let before = (unc_succeeded.len(), unc_failed.len());
        unc_succeeded.retain(|u| still_tracked.contains(u));
        unc_failed.retain(|u| still_tracked.contains(u));
        if !is_indexed {
            st["succeeded"] = json!(counted_succeeded + as_i64(before.0 - unc_succeeded.len()));
        }
        st["failed"] = json!(counted_failed + as_i64(before.1 - unc_failed.len()));
        for k in ["succeeded", "failed", "active"] {
            if st[k] == json!(0)
                && let Some(m) = st.as_object_mut()
            {
                // int32 counters without a pointer are omitempty in batch/v1.
                m.remove(k);
            }
        }
        st["uncountedTerminatedPods"] = uncounted_json(&unc_succeeded, &unc_failed);

        // Finished once every pod is counted and none is still terminating.
        let mut just_finished = None;
        if let Some(f) = &finished
            && unc_succeeded.is_empty()
            && unc_failed.is_empty()
            && terminating == 0
        {
            let t = f.terminal();
            if !conditions.iter().any(|c| c["type"] == t.type_ && c["status"] == "True") {
                conditions.push(t.to_json(&now_s));
            }
            if t.type_ == "Complete" {
                st["completionTime"] = json!(now_s);
            }
            just_finished = Some(t);
        }
        set_conditions(&mut st, conditions);
        self.write_status(job, &st).await?;
        if let Some(t) = just_finished {
            tracing::info!(condition = t.type_, reason = %t.reason, "job finished");
            if t.type_ == "Complete" {
                event(&self.api, job, "Normal", "Completed", "Job completed", COMPONENT).await;
            } else {
                event(&self.api, job, "Warning", &t.reason, &t.message, COMPONENT).await;
            }
            if spec_i64(job, "ttlSecondsAfterFinished").is_some() {
                requeue = Some(Duration::from_millis(100));
            }
        }
        Ok(requeue)
    }

    /// `manageJob`: create or delete pods so `want_active` run; pods wait out the failure back-off.
    async fn manage(
        &self,
        job: &Value,
        pods: &[Arc<Value>],
        active_pods: &[&Arc<Value>],
        succeeded: i64,
        succeeded_indexes: &BTreeSet<i64>,
        now: jiff::Timestamp,
    ) -> Result<Managed, String> {
        if suspended(job) {
            return Ok(self.delete_pods(job, active_pods, "job suspended").await);
        }
        let terminating = i64::try_from(
            pods.iter()
                .filter(|p| workload::is_terminating(p) && !workload::is_terminal(p))
                .count(),
        )
        .unwrap_or(0);
        let completions = spec_i64(job, "completions");
        let mut m = Managed::default();
        let mut excess: Vec<&Arc<Value>> = Vec::new();
        let mut keep: Vec<&Arc<Value>> = active_pods.to_vec();
        if let (true, Some(c)) = (indexed(job), completions) {
            // Pods of an index that is done, out of range, or already taken go first.
            let mut seen = HashSet::new();
            keep.clear();
            let mut sorted = active_pods.to_vec();
            sorted.sort_by_key(|p| workload::created_at(p));
            for p in sorted {
                match completion_index(p, c) {
                    Some(i) if !succeeded_indexes.contains(&i) && seen.insert(i) => keep.push(p),
                    _ => excess.push(p),
                }
            }
        }
        let kept = i64::try_from(keep.len()).unwrap_or(i64::MAX);
        let want = want_active(job, succeeded, kept);
        if kept > want {
            removal_order(&mut keep);
            excess.extend(keep.drain(..usize::try_from(kept - want).unwrap_or(0)));
        }
        if !excess.is_empty() {
            m = self.delete_pods(job, &excess, "too many active").await;
        }
        let running =
            i64::try_from(keep.len()).unwrap_or(i64::MAX) + if only_replace_failed(job) { terminating } else { 0 };
        if running >= want {
            return Ok(m);
        }
        let wait = backoff_remaining(job, pods, now);
        if !wait.is_zero() {
            tracing::debug!(wait = ?wait, "waiting out the pod failure back-off");
            m.requeue = Some(wait);
            return Ok(m);
        }
        let missing = usize::try_from(want - running).unwrap_or(0);
        let indexes: Vec<Option<i64>> = match (indexed(job), completions) {
            (true, Some(c)) => {
                let taken: HashSet<i64> = keep.iter().filter_map(|p| completion_index(p, c)).collect();
                (0..c)
                    .filter(|i| !succeeded_indexes.contains(i) && !taken.contains(i))
                    .take(missing)
                    .map(Some)
                    .collect()
            }
            _ => vec![None; missing],
        };
        let ns = meta_str(job, "namespace").unwrap_or("default");
        for index in indexes {
            let pod = new_pod(job, index);
            match self
                .api
                .create(&workload::collection(res("v1", "Pod"), ns), pod, &Query::internal())
                .await
            {
                Ok(r) => {
                    let pod_name = meta_str(&r.body, "name").unwrap_or("").to_string();
                    tracing::info!(pod = %pod_name, index, "created job pod");
                    event(
                        &self.api,
                        job,
                        "Normal",
                        "SuccessfulCreate",
                        &format!("Created pod: {pod_name}"),
                        COMPONENT,
                    )
                    .await;
                    workload::await_cache(&self.inf.pods, ns, &pod_name, |p| p.is_some()).await;
                    m.created += 1;
                }
                Err(e) => {
                    event(
                        &self.api,
                        job,
                        "Warning",
                        "FailedCreate",
                        &format!("Error creating: {}", e.message),
                        COMPONENT,
                    )
                    .await;
                    return Err(format!(
                        "creating a pod of job {ns}/{}: {}",
                        meta_str(job, "name").unwrap_or(""),
                        e.message
                    ));
                }
            }
        }
        Ok(m)
    }

    /// Delete pods (keeping their finalizers: they are counted before they go).
    async fn delete_pods(&self, job: &Value, pods: &[&Arc<Value>], why: &str) -> Managed {
        let ns = meta_str(job, "namespace").unwrap_or("default");
        let mut m = Managed::default();
        for p in pods {
            let name = meta_str(p, "name").unwrap_or("");
            match workload::delete_pod(&self.api, ns, name, meta_str(p, "uid").unwrap_or(""), false).await {
                Ok(()) => {
                    tracing::info!(pod = name, why, "deleted job pod");
                    event(
                        &self.api,
                        job,
                        "Normal",
                        "SuccessfulDelete",
                        &format!("Deleted pod: {name}"),
                        COMPONENT,
                    )
                    .await;
                    m.deleted += 1;
                    if workload::is_ready(p) {
                        m.deleted_ready += 1;
                    }
                }
                Err(e) => tracing::warn!(pod = name, error = %e, "deleting job pod failed"),
            }
        }
        m
    }

    /// `Suspended` True while suspended; False (`JobResumed`, start time reset) once resumed.
    fn suspend_condition(&self, job: &Value, st: &mut Value, now: &str) {
        let mut conditions: Vec<Value> = st["conditions"].as_array().cloned().unwrap_or_default();
        let pos = conditions.iter().position(|c| c["type"] == "Suspended");
        let (status, reason, message) = if suspended(job) {
            ("True", "JobSuspended", "Job suspended")
        } else {
            ("False", "JobResumed", "Job resumed")
        };
        match pos {
            Some(i) if conditions[i]["status"] == status => return,
            Some(i) => {
                conditions[i] = json!({"type": "Suspended", "status": status, "lastProbeTime": now,
                                       "lastTransitionTime": now, "reason": reason, "message": message});
                if status == "False" {
                    st["startTime"] = json!(now);
                }
            }
            None if status == "True" => conditions.push(json!({"type": "Suspended", "status": status,
                "lastProbeTime": now, "lastTransitionTime": now, "reason": reason, "message": message})),
            None => return,
        }
        set_conditions(st, conditions);
    }

    async fn write_status(&self, job: &Value, st: &Value) -> Result<(), String> {
        if job.get("status") == Some(st) {
            return Ok(());
        }
        let ns = meta_str(job, "namespace").unwrap_or("default");
        let name = meta_str(job, "name").unwrap_or("");
        let uid = meta_str(job, "uid").unwrap_or("").to_string();
        self.api
            .modify_status_with(&workload::path(Self::job_res(), ns, name), name, |cur| {
                if meta_str(cur, "uid") != Some(uid.as_str()) {
                    return Err(crate::api::error::ApiError::new(
                        409,
                        "Conflict",
                        "the job was replaced",
                    ));
                }
                let mut o = cur.clone();
                o["status"] = st.clone();
                Ok(o)
            })
            .await
            .map(|_| ())
            .map_err(|e| format!("updating status of job {ns}/{name}: {}", e.message))
    }

    /// Remove the tracking finalizer; true when it is gone (or the pod is).
    async fn remove_finalizer(&self, key: &str, pod: &Value) -> bool {
        let ns = meta_str(pod, "namespace").unwrap_or("default");
        let name = meta_str(pod, "name").unwrap_or("");
        let uid = meta_str(pod, "uid").unwrap_or("").to_string();
        let r = self
            .api
            .modify_with(&workload::path(res("v1", "Pod"), ns, name), name, |cur| {
                let mut o = cur.clone();
                if meta_str(cur, "uid") != Some(uid.as_str()) {
                    return Ok(o);
                }
                let fins: Vec<Value> = crate::api::object::finalizers(cur)
                    .into_iter()
                    .filter(|f| f != TRACKING_FINALIZER)
                    .map(Value::from)
                    .collect();
                o["metadata"]["finalizers"] = json!(fins);
                if fins.is_empty()
                    && let Some(m) = o["metadata"].as_object_mut()
                {
                    m.remove("finalizers");
                }
                Ok(o)
            })
            .await;
        match r {
            Ok(()) => {
                self.expected(key, |s| s.insert(uid));
                true
            }
            Err(e) if e.code == 404 => true,
            Err(e) => {
                tracing::warn!(pod = name, error = %e.message, "removing the job tracking finalizer failed");
                false
            }
        }
    }

    /// Pods still holding the tracking finalizer for a Job `name` that is gone (or was replaced by another of the
    /// same name) are let go: nobody else would ever remove it.
    async fn release_orphans(&self, ns: &str, name: &str, live_uid: Option<&str>) {
        let key = format!("{ns}/{name}");
        for p in self.inf.pods.list(Some(ns)) {
            let Some(r) = workload::controller_ref(&p) else {
                continue;
            };
            if r["kind"] == "Job" && r["name"] == name && r["uid"].as_str() != live_uid && has_tracking_finalizer(&p) {
                self.remove_finalizer(&key, &p).await;
            }
        }
    }

    /// `ttlSecondsAfterFinished`: delete the finished Job once its time is up.
    async fn expire(&self, job: &Value) -> Result<Option<Duration>, String> {
        let Some(ttl) = spec_i64(job, "ttlSecondsAfterFinished") else {
            return Ok(None);
        };
        let finished_at = ["Complete", "Failed"]
            .into_iter()
            .filter_map(|t| true_condition(job, t))
            .filter_map(|c| c["lastTransitionTime"].as_str())
            .filter_map(workload::parse_time)
            .max()
            .unwrap_or_else(jiff::Timestamp::now);
        let expires = finished_at + jiff::SignedDuration::from_secs(ttl);
        let now = jiff::Timestamp::now();
        if now < expires {
            let left = Duration::try_from(expires.duration_since(now)).unwrap_or(Duration::from_secs(1));
            return Ok(Some(left));
        }
        let ns = meta_str(job, "namespace").unwrap_or("default");
        let name = meta_str(job, "name").unwrap_or("");
        let opts = json!({"propagationPolicy": "Foreground", "preconditions": {"uid": meta_str(job, "uid")}});
        match self
            .api
            .delete(&workload::path(Self::job_res(), ns, name), opts, &Query::internal())
            .await
        {
            Ok(_) => {
                tracing::info!("deleted job after ttlSecondsAfterFinished");
                Ok(None)
            }
            Err(e) if e.code == 404 || e.code == 409 => Ok(None),
            Err(e) => Err(format!("deleting expired job {ns}/{name}: {}", e.message)),
        }
    }
}

fn has_tracking_finalizer(p: &Value) -> bool {
    crate::api::object::finalizers(p)
        .iter()
        .any(|f| f == TRACKING_FINALIZER)
}

fn uncounted_json(succeeded: &[String], failed: &[String]) -> Value {
    let mut u = json!({});
    if !succeeded.is_empty() {
        u["succeeded"] = json!(succeeded);
    }
    if !failed.is_empty() {
        u["failed"] = json!(failed);
    }
    u
}

fn set_conditions(st: &mut Value, conditions: Vec<Value>) {
    if conditions.is_empty() {
        if let Some(m) = st.as_object_mut() {
            m.remove("conditions");
        }
    } else {
        st["conditions"] = json!(conditions);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(spec: Value) -> Value {
        json!({"metadata": {"name": "pi", "namespace": "default", "uid": "u1"},
               "spec": spec})
    }

    fn pod(phase: &str, finished_secs_ago: i64) -> Arc<Value> {
        let t = format_time(jiff::Timestamp::now() - jiff::SignedDuration::from_secs(finished_secs_ago));
        Arc::new(json!({"metadata": {"name": "p", "uid": "x"},
            "status": {"phase": phase, "containerStatuses": [{"state": {"terminated": {"finishedAt": t}}}]}}))
    }

    #[test]
    fn want_active_follows_completions_and_parallelism() {
        let j = job(json!({"completions": 3, "parallelism": 2}));
        assert_eq!(want_active(&j, 0, 0), 2);
        assert_eq!(want_active(&j, 2, 1), 1);
        assert_eq!(want_active(&j, 3, 0), 0);
        let wq = job(json!({"parallelism": 4}));
        assert_eq!(want_active(&wq, 0, 0), 4);
        assert_eq!(want_active(&wq, 1, 2), 2);
    }

    #[test]
    fn failed_pods_and_deleted_pods() {
        let j = job(json!({}));
        let deleted =
            json!({"metadata": {"deletionTimestamp": "2024-01-01T00:00:00Z"}, "status": {"phase": "Running"}});
        assert!(is_failed(&j, &json!({"status": {"phase": "Failed"}})));
        assert!(is_failed(&j, &deleted));
        assert!(!is_active(&deleted));
        let only_failed = job(json!({"podReplacementPolicy": "Failed"}));
        assert!(!is_failed(&only_failed, &deleted));
    }

    #[test]
    fn backoff_doubles_after_failures() {
        let j = job(json!({}));
        assert_eq!(backoff_remaining(&j, &[], jiff::Timestamp::now()), Duration::ZERO);
        let one = backoff_remaining(&j, &[pod("Failed", 0)], jiff::Timestamp::now());
        assert!(one > Duration::from_secs(8) && one <= DEFAULT_BACKOFF, "{one:?}");
        let two = backoff_remaining(&j, &[pod("Failed", 0), pod("Failed", 0)], jiff::Timestamp::now());
        assert!(two > Duration::from_secs(18), "{two:?}");
        // Long ago: no wait. A success after the failures resets the count.
        assert_eq!(
            backoff_remaining(&j, &[pod("Failed", 100)], jiff::Timestamp::now()),
            Duration::ZERO
        );
        let reset = backoff_remaining(&j, &[pod("Failed", 50), pod("Succeeded", 40)], jiff::Timestamp::now());
        assert_eq!(reset, Duration::ZERO);
    }

    #[test]
    fn on_failure_restarts_count_against_the_limit() {
        let j = job(json!({"backoffLimit": 2, "template": {"spec": {"restartPolicy": "OnFailure"}}}));
        let p = |n: i64| Arc::new(json!({"status": {"phase": "Running", "containerStatuses": [{"restartCount": n}]}}));
        assert!(!past_backoff_on_failure(&j, &[p(1)]));
        assert!(past_backoff_on_failure(&j, &[p(1), p(1)]));
        let never = job(json!({"backoffLimit": 2, "template": {"spec": {"restartPolicy": "Never"}}}));
        assert!(!past_backoff_on_failure(&never, &[p(5)]));
    }

    #[test]
    fn indexes_round_trip() {
        let ix = parse_indexes("0,2-4,7", 10);
        assert_eq!(ix.iter().copied().collect::<Vec<_>>(), vec![0, 2, 3, 4, 7]);
        assert_eq!(format_indexes(&ix), "0,2-4,7");
        assert_eq!(format_indexes(&parse_indexes("1-3", 3)), "1-2");
        assert_eq!(format_indexes(&BTreeSet::new()), "");
    }

    #[test]
    fn pods_carry_finalizer_and_index() {
        let j = job(json!({"completionMode": "Indexed", "completions": 3,
            "template": {"metadata": {"labels": {"batch.kubernetes.io/job-name": "pi"}},
                         "spec": {"containers": [{"name": "c", "image": "i"}], "restartPolicy": "Never"}}}));
        let p = new_pod(&j, Some(2));
        assert_eq!(p["metadata"]["generateName"], "pi-2-");
        assert_eq!(p["metadata"]["finalizers"], json!([TRACKING_FINALIZER]));
        assert_eq!(p["metadata"]["annotations"][COMPLETION_INDEX], "2");
        assert_eq!(p["metadata"]["labels"][COMPLETION_INDEX], "2");
        assert_eq!(p["metadata"]["labels"]["batch.kubernetes.io/job-name"], "pi");
        assert_eq!(p["spec"]["hostname"], "pi-2");
        assert_eq!(p["spec"]["containers"][0]["env"][0]["name"], "JOB_COMPLETION_INDEX");
        assert_eq!(completion_index(&p, 3), Some(2));
        assert_eq!(completion_index(&p, 2), None);
        let plain = new_pod(&job(json!({"template": {"spec": {}}})), None);
        assert_eq!(plain["metadata"]["generateName"], "pi-");
        assert_eq!(plain["metadata"]["ownerReferences"][0]["kind"], "Job");
    }

    #[test]
    fn deadline() {
        let j = job(json!({"activeDeadlineSeconds": 10}));
        let now = jiff::Timestamp::now();
        let started = now - jiff::SignedDuration::from_secs(4);
        let left = deadline_remaining(&j, Some(started), now).unwrap();
        assert_eq!(left, Duration::from_secs(6));
        let old = now - jiff::SignedDuration::from_secs(40);
        assert_eq!(deadline_remaining(&j, Some(old), now), Some(Duration::ZERO));
        assert_eq!(deadline_remaining(&job(json!({})), Some(old), now), None);
    }

    #[test]
    fn conditions_lead_to_terminal_ones() {
        let c = Cond::new("FailureTarget", "BackoffLimitExceeded", "m");
        assert_eq!(c.terminal().type_, "Failed");
        assert_eq!(c.terminal().reason, "BackoffLimitExceeded");
        assert_eq!(
            Cond::new("SuccessCriteriaMet", "CompletionsReached", "m")
                .terminal()
                .type_,
            "Complete"
        );
        let done = json!({"status": {"conditions": [{"type": "Complete", "status": "True"}]}});
        assert!(is_finished(&done));
        assert!(!is_finished(
            &json!({"status": {"conditions": [{"type": "SuccessCriteriaMet", "status": "True"}]}})
        ));
    }
}
