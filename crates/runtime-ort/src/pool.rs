//! A model's instances behind one entry point: least-loaded routing, a bounded queue, and
//! dynamic batching for models that declare it.
//!
//! Batching: each instance gets a batching thread that takes the first waiting request, then
//! gathers compatible ones (same inputs, same element types, same dimensions past axis 0) until
//! `max_batch_size` rows, `max_queue_delay`, or the moment no other admitted request is left to
//! wait for — whichever comes first — stacks them along axis 0, runs once and splits every output
//! back along axis 0. The last condition keeps a lone request from paying the delay, and lets a
//! batch under load fill with the callers whose previous requests are still running. An idle instance's thread picks up the
//! next request, so load spreads without a separate scheduler. Incompatible requests wait for a
//! batch of their own.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

use crate::error::RuntimeError;
use crate::info::{Dim, ModelInfo};
use crate::tensor::{Inputs, Outputs, Tensor};
use crate::worker::SessionHandle;

/// How requests reach a model's instances.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolConfig {
    /// Requests admitted at once (running or waiting); more are refused as overloaded.
    pub queue_limit: usize,
    /// Merge concurrent requests into one run.
    pub batching: Option<BatchConfig>,
}

/// Dynamic batching limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchConfig {
    /// Rows (axis 0) in one merged run.
    pub max_batch_size: usize,
    /// How long the first request of a batch waits for company.
    pub max_queue_delay: Duration,
}

impl Default for PoolConfig {
    fn default() -> Self {
        Self {
            queue_limit: 1024,
            batching: None,
        }
    }
}

/// How often a gathering batch looks again at whether more requests could still join it.
const POLL: Duration = Duration::from_micros(100);

type Reply = oneshot::Sender<Result<Outputs, RuntimeError>>;

struct BatchJob {
    inputs: Inputs,
    rows: usize,
    reply: Reply,
}

/// The instances of one model. Cheap to clone.
#[derive(Debug, Clone)]
pub struct SessionPool {
    inner: Arc<PoolInner>,
}

#[derive(Debug)]
struct PoolInner {
    name: String,
    instances: Vec<SessionHandle>,
    queue_limit: usize,
    admitted: Arc<AtomicUsize>,
    batches: Option<Mutex<Option<mpsc::Sender<BatchJob>>>>,
}

impl SessionPool {
    /// A pool over `instances` (at least one, all of the same model). Batching is enabled only
    /// when every input and output of the model has a dynamic first dimension; otherwise the
    /// request is refused with the offending tensor named.
    pub fn new(instances: Vec<SessionHandle>, config: PoolConfig) -> Result<Self, RuntimeError> {
        let Some(first) = instances.first() else {
            return Err(RuntimeError::Ort(ort::Error::new(
                "a pool needs at least one instance",
            )));
        };
        let name = first.name().to_owned();
        let admitted = Arc::new(AtomicUsize::new(0));
        let batches = match config.batching {
            None => None,
            Some(batch) => {
                check_batchable(&name, first.info())?;
                let (sender, receiver) = mpsc::channel::<BatchJob>();
                let receiver = Arc::new(Mutex::new(receiver));
                for instance in &instances {
                    let instance = instance.clone();
                    let receiver = Arc::clone(&receiver);
                    let admitted = Arc::clone(&admitted);
                    std::thread::Builder::new()
                        .name(format!("batch:{name}"))
                        .spawn(move || batch_loop(&instance, &receiver, &admitted, batch))
                        .map_err(|e| {
                            RuntimeError::Ort(ort::Error::new(format!(
                                "cannot start a batching thread: {e}"
                            )))
                        })?;
                }
                Some(Mutex::new(Some(sender)))
            }
        };
        Ok(Self {
            inner: Arc::new(PoolInner {
                name,
                instances,
                queue_limit: config.queue_limit.max(1),
                admitted,
                batches,
            }),
        })
    }

    /// The model's signature.
    pub fn info(&self) -> &ModelInfo {
        self.inner.instances[0].info()
    }

    /// The instances.
    pub fn instances(&self) -> &[SessionHandle] {
        &self.inner.instances
    }

    /// Requests admitted and not yet answered.
    pub fn queued(&self) -> usize {
        self.inner.admitted.load(Ordering::Relaxed)
    }

    /// Runs one request on the least-loaded instance (or in the next batch).
    pub async fn run(&self, inputs: Inputs) -> Result<Outputs, RuntimeError> {
        // Dropped when the request ends, also when the caller's future is cancelled, so a
        // cancelled request frees its place in the queue.
        let _admission = self.admit()?;
        match &self.inner.batches {
            None => self.least_loaded().run_async(inputs).await,
            Some(_) => self
                .enqueue(inputs)?
                .await
                .unwrap_or_else(|_| Err(self.closed())),
        }
    }

    /// Like [`SessionPool::run`], blocking the calling thread.
    pub fn run_blocking(&self, inputs: Inputs) -> Result<Outputs, RuntimeError> {
        let _admission = self.admit()?;
        match &self.inner.batches {
            None => self.least_loaded().run(inputs),
            Some(_) => self
                .enqueue(inputs)?
                .blocking_recv()
                .unwrap_or_else(|_| Err(self.closed())),
        }
    }

    /// Stops every instance (queued runs finish first) and the batching threads.
    pub fn shutdown(&self) {
        if let Some(batches) = &self.inner.batches
            && let Ok(mut sender) = batches.lock()
        {
            sender.take();
        }
        for instance in &self.inner.instances {
            instance.shutdown();
        }
    }

    fn admit(&self) -> Result<Admission<'_>, RuntimeError> {
        let before = self.inner.admitted.fetch_add(1, Ordering::AcqRel);
        let admission = Admission(&self.inner.admitted);
        if before >= self.inner.queue_limit {
            return Err(RuntimeError::Overloaded {
                model: self.inner.name.clone(),
                limit: self.inner.queue_limit,
            });
        }
        Ok(admission)
    }

    fn least_loaded(&self) -> &SessionHandle {
        self.inner
            .instances
            .iter()
            .min_by_key(|i| i.in_flight())
            .unwrap_or(&self.inner.instances[0])
    }

    fn enqueue(
        &self,
        inputs: Inputs,
    ) -> Result<oneshot::Receiver<Result<Outputs, RuntimeError>>, RuntimeError> {
        // Checked before queueing so one bad request never fails a whole batch.
        self.info()
            .check_inputs(&inputs)
            .map_err(|mismatch| RuntimeError::Input {
                model: self.inner.name.clone(),
                mismatch,
            })?;
        let rows = inputs
            .iter()
            .next()
            .and_then(|(_, t)| t.shape().first().copied())
            .unwrap_or(0);
        let (reply, receiver) = oneshot::channel();
        let sender = self
            .inner
            .batches
            .as_ref()
            .and_then(|b| b.lock().ok().and_then(|s| s.clone()))
            .ok_or_else(|| self.closed())?;
        sender
            .send(BatchJob {
                inputs,
                rows,
                reply,
            })
            .map_err(|_| self.closed())?;
        Ok(receiver)
    }

    fn closed(&self) -> RuntimeError {
        RuntimeError::SessionClosed {
            model: self.inner.name.clone(),
        }
    }
}

struct Admission<'a>(&'a AtomicUsize);

impl Drop for Admission<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

fn check_batchable(name: &str, info: &ModelInfo) -> Result<(), RuntimeError> {
    for tensor in info.inputs.iter().chain(&info.outputs) {
        if !matches!(tensor.shape.first(), Some(Dim::Symbolic(_) | Dim::Dynamic)) {
            return Err(RuntimeError::Unbatchable {
                model: name.to_owned(),
                output: tensor.name.clone(),
            });
        }
    }
    Ok(())
}

/// Whether two requests can share a run: same names, element types and trailing dimensions.
fn compatible(a: &Inputs, b: &Inputs) -> bool {
    a.0.len() == b.0.len()
        && a.iter().all(|(name, ta)| {
            b.iter().any(|(n, tb)| {
                n == name
                    && ta.element_type() == tb.element_type()
                    && ta.shape().get(1..) == tb.shape().get(1..)
            })
        })
}

fn batch_loop(
    instance: &SessionHandle,
    jobs: &Mutex<mpsc::Receiver<BatchJob>>,
    admitted: &AtomicUsize,
    config: BatchConfig,
) {
    let mut held_back: VecDeque<BatchJob> = VecDeque::new();
    loop {
        let batch = {
            let Ok(receiver) = jobs.lock() else { return };
            match gather(&receiver, &mut held_back, admitted, config) {
                Some(batch) => batch,
                None => return,
            }
        };
        run_batch(instance, batch);
    }
}

/// Takes a first job (a held-back one first), then compatible ones until the batch is full, the
/// first job has waited `max_queue_delay`, or no other admitted request is left to wait for. `None` when the pool is shut down and nothing is left.
fn gather(
    receiver: &mpsc::Receiver<BatchJob>,
    held_back: &mut VecDeque<BatchJob>,
    admitted: &AtomicUsize,
    config: BatchConfig,
) -> Option<Vec<BatchJob>> {
    let first = match held_back.pop_front() {
        Some(job) => job,
        None => receiver.recv().ok()?,
    };
    let deadline = Instant::now() + config.max_queue_delay;
    let mut rows = first.rows;
    let mut batch = vec![first];
    let mut index = 0;
    while index < held_back.len() && rows < config.max_batch_size {
        if compatible(&batch[0].inputs, &held_back[index].inputs)
            && rows + held_back[index].rows <= config.max_batch_size
        {
            let job = held_back.remove(index)?;
            rows += job.rows;
            batch.push(job);
        } else {
            index += 1;
        }
    }
    while rows < config.max_batch_size {
        // Waiting only helps while some admitted request is not in this batch yet: a request
        // alone in the pool goes at once, and under load the batch fills with the callers whose
        // previous requests are still running (rather than always waiting `max_queue_delay`).
        if admitted.load(Ordering::Acquire) <= batch.len() {
            break;
        }
        let wait = deadline.saturating_duration_since(Instant::now()).min(POLL);
        if wait.is_zero() {
            break;
        }
        match receiver.recv_timeout(wait) {
            Ok(job) => {
                if compatible(&batch[0].inputs, &job.inputs)
                    && rows + job.rows <= config.max_batch_size
                {
                    rows += job.rows;
                    batch.push(job);
                } else {
                    held_back.push_back(job);
                }
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        }
    }
    Some(batch)
}

fn run_batch(instance: &SessionHandle, batch: Vec<BatchJob>) {
    if batch.len() == 1 {
        let job = batch.into_iter().next();
        if let Some(job) = job {
            let _ = job.reply.send(instance.run(job.inputs));
        }
        return;
    }
    let sizes: Vec<usize> = batch.iter().map(|j| j.rows).collect();
    let mut merged = Inputs::new();
    let names: Vec<String> = batch[0].inputs.iter().map(|(n, _)| n.to_owned()).collect();
    for name in names {
        let parts: Vec<&Tensor> = batch
            .iter()
            .filter_map(|j| {
                j.inputs
                    .iter()
                    .find(|(n, _)| *n == name.as_str())
                    .map(|(_, t)| t)
            })
            .collect();
        match Tensor::concat(&parts) {
            Some(tensor) => merged.push(name.as_str(), tensor),
            None => {
                // Cannot happen for compatible requests; answer each on its own rather than fail.
                for job in batch {
                    let _ = job.reply.send(instance.run(job.inputs));
                }
                return;
            }
        }
    }
    let replies: Vec<Reply> = batch.into_iter().map(|j| j.reply).collect();
    match instance.run(merged) {
        Err(e) => {
            let message = e.to_string();
            for reply in replies {
                let _ = reply.send(Err(RuntimeError::Ort(ort::Error::new(message.clone()))));
            }
        }
        Ok(outputs) => {
            let model = outputs.model.clone();
            let mut per_request: Vec<Vec<(String, Tensor)>> = vec![Vec::new(); sizes.len()];
            for (name, tensor) in outputs.into_vec() {
                let Some(pieces) = tensor.split(&sizes) else {
                    for reply in replies {
                        let _ = reply.send(Err(RuntimeError::Unbatchable {
                            model: model.clone(),
                            output: name.clone(),
                        }));
                    }
                    return;
                };
                for (slot, piece) in per_request.iter_mut().zip(pieces) {
                    slot.push((name.clone(), piece));
                }
            }
            for (reply, values) in replies.into_iter().zip(per_request) {
                let _ = reply.send(Ok(Outputs {
                    model: model.clone(),
                    values,
                }));
            }
        }
    }
}
