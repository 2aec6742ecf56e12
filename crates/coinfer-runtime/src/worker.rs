//! The edge worker: the one thread that owns the edge half and the codec, decodes features,
//! optionally merges requests into one batch, runs the model and hands logits back to the
//! connection threads. It never touches a socket, so a slow client cannot stall it.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender, TryRecvError};
use std::time::{Duration, Instant};

use burn::prelude::*;

use crate::error::ErrorCode;
use crate::frame::EdgeTiming;
use crate::server::Stats;
use coinfer_codec::SharedCodec;
use coinfer_split::inference::InferenceNetwork;

/// One Infer request handed from a connection thread to the worker.
pub(crate) struct Job {
    pub(crate) request_id: u64,
    /// Which of the server's plans the request was computed under.
    pub(crate) plan: usize,
    /// The frame's `[B, C, H, W]`, already checked against the plan.
    pub(crate) shape: [usize; 4],
    pub(crate) payload: Vec<u8>,
    pub(crate) enqueued: Instant,
    pub(crate) reply: Sender<Reply>,
}

/// Logits for one request.
pub(crate) struct Answer {
    pub(crate) logits: Vec<f32>,
    pub(crate) batch: usize,
    pub(crate) classes: usize,
    pub(crate) timing: EdgeTiming,
}

/// The worker's answer: logits or a typed error for an Error frame.
pub(crate) type Reply = Result<Answer, (ErrorCode, String)>;

/// One served plan's edge half and codec.
pub(crate) struct WorkerPlan {
    pub(crate) edge: InferenceNetwork,
    pub(crate) codec: SharedCodec,
    pub(crate) classes: usize,
}

/// The worker's state.
pub(crate) struct Worker {
    /// The served plans, in the server's order (one, or a plan set's).
    pub(crate) plans: Vec<WorkerPlan>,
    pub(crate) device: Device,
    pub(crate) batch_window: Option<Duration>,
    pub(crate) max_batch: usize,
    /// Most samples in one forward pass (the server's `max_request_batch`).
    pub(crate) max_samples: usize,
    pub(crate) stats: Arc<Stats>,
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into())
}

impl Worker {
    /// Serves jobs until every sender is gone.
    pub(crate) fn run(self, jobs: Receiver<Job>) {
        let mut carried: Option<Job> = None;
        while let Some(first) = carried.take().or_else(|| jobs.recv().ok()) {
            let (batch, next) = self.gather(first, &jobs);
            carried = next;
            self.process(batch);
        }
    }

    /// With a batching window, adds the jobs that arrive within `window` of the first one's
    /// arrival (up to `max_batch` requests and `max_samples` samples); without one, runs the
    /// first job alone. A job that would push the pass over `max_samples` is handed back to
    /// start the next pass, so one forward pass never runs more than `max_samples` samples
    /// (connections refuse larger requests before reading them); so is a job of another plan
    /// (one forward pass runs one plan's edge half).
    fn gather(&self, first: Job, jobs: &Receiver<Job>) -> (Vec<Job>, Option<Job>) {
        let Some(window) = self.batch_window else {
            return (vec![first], None);
        };
        let deadline = first.enqueued + window;
        let mut samples = first.shape[0];
        let mut batch = vec![first];
        while batch.len() < self.max_batch {
            let job = match jobs.try_recv() {
                Ok(job) => job,
                Err(TryRecvError::Disconnected) => break,
                Err(TryRecvError::Empty) => {
                    let now = Instant::now();
                    if now >= deadline {
                        break;
                    }
                    match jobs.recv_timeout(deadline - now) {
                        Ok(job) => job,
                        Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => break,
                    }
                }
            };
            if samples + job.shape[0] > self.max_samples || job.plan != batch[0].plan {
                return (batch, Some(job));
            }
            samples += job.shape[0];
            batch.push(job);
        }
        (batch, None)
    }

    /// Decodes every job, runs the decodable ones as one batch, and replies to each.
    fn process(&self, batch: Vec<Job>) {
        let plan = &self.plans[batch[0].plan];
        let mut ready = Vec::with_capacity(batch.len());
        for job in batch {
            let start = Instant::now();
            let queue_us = micros(start.duration_since(job.enqueued));
            let decoded = catch_unwind(AssertUnwindSafe(|| {
                plan.codec.decode(&job.payload, &self.device)
            }));
            let decode_us = micros(start.elapsed());
            let error = match decoded {
                Ok(Ok(feature)) if feature.dims() == job.shape => {
                    ready.push((job, feature, queue_us, decode_us));
                    continue;
                }
                Ok(Ok(feature)) => (
                    ErrorCode::ShapeMismatch,
                    format!(
                        "request {}: the payload decodes to shape {:?} but the frame says {:?}",
                        job.request_id,
                        feature.dims(),
                        job.shape
                    ),
                ),
                Ok(Err(e)) => (
                    ErrorCode::BadPayload,
                    format!("request {}: feature payload: {e}", job.request_id),
                ),
                Err(panic) => (
                    ErrorCode::Internal,
                    format!(
                        "request {}: the codec failed: {}",
                        job.request_id,
                        panic_message(panic.as_ref())
                    ),
                ),
            };
            // The connection may be gone already; nobody else wants the reply.
            let _ = job.reply.send(Err(error));
        }
        if ready.is_empty() {
            return;
        }
        let (jobs, features): (Vec<_>, Vec<_>) = ready
            .into_iter()
            .map(|(job, feature, queue_us, decode_us)| ((job, queue_us, decode_us), feature))
            .unzip();
        let requests = jobs.len();
        let start = Instant::now();
        let logits =
            catch_unwind(AssertUnwindSafe(|| run_edge(plan, features))).unwrap_or_else(|panic| {
                Err(format!(
                    "the edge model failed: {}",
                    panic_message(panic.as_ref())
                ))
            });
        let edge_us = micros(start.elapsed());
        self.stats.forward_passes.fetch_add(1, Ordering::Relaxed);
        self.stats
            .max_batch_seen
            .fetch_max(requests as u64, Ordering::Relaxed);
        let values = match logits {
            Ok(values) => values,
            Err(message) => {
                for (job, _, _) in jobs {
                    let _ = job.reply.send(Err((
                        ErrorCode::Internal,
                        format!("request {}: {message}", job.request_id),
                    )));
                }
                return;
            }
        };
        let mut rows = values.into_iter();
        for (job, queue_us, decode_us) in jobs {
            let batch = job.shape[0];
            let logits: Vec<f32> = rows.by_ref().take(batch * plan.classes).collect();
            let _ = job.reply.send(Ok(Answer {
                logits,
                batch,
                classes: plan.classes,
                timing: EdgeTiming {
                    queue_us,
                    decode_us,
                    edge_us,
                    batch_requests: requests as u32,
                },
            }));
        }
    }
}

/// Runs a plan's edge half on the concatenated features and reads the logits back.
fn run_edge(plan: &WorkerPlan, mut features: Vec<Tensor<4>>) -> Result<Vec<f32>, String> {
    let samples: usize = features.iter().map(|f| f.dims()[0]).sum();
    let input = if features.len() == 1 {
        features.pop().expect("one feature")
    } else {
        Tensor::cat(features, 0)
    };
    let logits = plan.edge.logits(input).map_err(|e| e.to_string())?;
    let values = logits
        .into_data()
        .try_into_vec::<f32>()
        .map_err(|e| format!("reading the logits back: {e:?}"))?;
    if values.len() != samples * plan.classes {
        return Err(format!(
            "the edge half returned {} logits for {samples} samples of {} classes",
            values.len(),
            plan.classes
        ));
    }
    Ok(values)
}
