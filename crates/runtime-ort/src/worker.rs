//! The worker thread that owns a session, and the cheap cloneable handle callers hold.
//!
//! ONNX Runtime's `Session::run` takes `&mut self` in `ort` 2.0.0-rc.15, so each session is owned
//! by one thread fed through a channel, replying through a oneshot (the pattern of
//! text-embeddings-inference). Concurrency comes from several instances, each with its worker.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use ort::logging::LogLevel;
use ort::session::{RunOptions, Session};
use ort::value::{DynValue, Tensor as OrtTensor, TensorElementType, ValueType};
use tokio::sync::oneshot;

use crate::error::RuntimeError;
use crate::info::ModelInfo;
use crate::session::{LoadedSession, Placement};
use crate::tensor::{Element, Inputs, Outputs, Tensor};

struct Job {
    inputs: Inputs,
    reply: oneshot::Sender<Result<Outputs, RuntimeError>>,
}

/// A handle on a loaded model instance. Clones share the same session; dropping the last one
/// (or calling [`SessionHandle::shutdown`]) ends the worker and frees the session.
#[derive(Debug, Clone)]
pub struct SessionHandle {
    inner: Arc<HandleInner>,
}

#[derive(Debug)]
struct HandleInner {
    name: String,
    info: ModelInfo,
    placement: Placement,
    sender: Mutex<Option<mpsc::Sender<Job>>>,
    worker: Mutex<Option<JoinHandle<()>>>,
    in_flight: Arc<AtomicUsize>,
}

impl SessionHandle {
    pub(crate) fn spawn(name: &str, loaded: LoadedSession) -> Self {
        let (sender, receiver) = mpsc::channel::<Job>();
        let LoadedSession {
            session,
            info,
            placement,
        } = loaded;
        let inner = Arc::new(HandleInner {
            name: name.to_owned(),
            info: info.clone(),
            placement,
            sender: Mutex::new(Some(sender)),
            worker: Mutex::new(None),
            in_flight: Arc::default(),
        });
        let worker_name = name.to_owned();
        let in_flight = Arc::clone(&inner.in_flight);
        let worker = std::thread::Builder::new()
            .name(format!("ort:{name}"))
            .spawn(move || serve(&worker_name, session, &info, &receiver, &in_flight));
        match worker {
            Ok(join) => {
                if let Ok(mut slot) = inner.worker.lock() {
                    *slot = Some(join);
                }
            }
            Err(e) => {
                // No thread, no session: calls will report the session as closed.
                tracing::error!(model = name, "cannot start the session worker: {e}");
                if let Ok(mut sender) = inner.sender.lock() {
                    sender.take();
                }
            }
        }
        Self { inner }
    }

    /// The model's name as given at load.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// The model's signature and header.
    pub fn info(&self) -> &ModelInfo {
        &self.inner.info
    }

    /// Where the session runs.
    pub fn placement(&self) -> &Placement {
        &self.inner.placement
    }

    /// Runs queued or running on this instance right now: the load a pool balances on.
    pub fn in_flight(&self) -> usize {
        self.inner.in_flight.load(Ordering::Relaxed)
    }

    /// Runs the model, blocking the calling thread until the outputs are ready.
    pub fn run(&self, inputs: Inputs) -> Result<Outputs, RuntimeError> {
        let reply = self.submit(inputs)?;
        reply.blocking_recv().unwrap_or_else(|_| Err(self.closed()))
    }

    /// Runs the model without blocking the async runtime.
    pub async fn run_async(&self, inputs: Inputs) -> Result<Outputs, RuntimeError> {
        let reply = self.submit(inputs)?;
        reply.await.unwrap_or_else(|_| Err(self.closed()))
    }

    /// Stops accepting runs, lets queued runs finish, and waits until the session is dropped, so
    /// that its memory is back when this returns. Later runs on any clone fail with
    /// [`RuntimeError::SessionClosed`].
    pub fn shutdown(&self) {
        if let Ok(mut sender) = self.inner.sender.lock() {
            sender.take();
        }
        let worker = self.inner.worker.lock().ok().and_then(|mut w| w.take());
        if let Some(worker) = worker
            && worker.join().is_err()
        {
            tracing::error!(model = %self.inner.name, "the session worker panicked");
        }
    }

    fn submit(
        &self,
        inputs: Inputs,
    ) -> Result<oneshot::Receiver<Result<Outputs, RuntimeError>>, RuntimeError> {
        // Checked here, on the caller's thread, so a bad request never occupies the worker.
        self.inner
            .info
            .check_inputs(&inputs)
            .map_err(|mismatch| RuntimeError::Input {
                model: self.inner.name.clone(),
                mismatch,
            })?;
        let (reply, receiver) = oneshot::channel();
        let sender = self
            .inner
            .sender
            .lock()
            .ok()
            .and_then(|s| s.clone())
            .ok_or_else(|| self.closed())?;
        // Counted up here and down by the worker once the reply is sent.
        self.inner.in_flight.fetch_add(1, Ordering::Relaxed);
        if sender.send(Job { inputs, reply }).is_err() {
            self.inner.in_flight.fetch_sub(1, Ordering::Relaxed);
            return Err(self.closed());
        }
        Ok(receiver)
    }

    fn closed(&self) -> RuntimeError {
        RuntimeError::SessionClosed {
            model: self.inner.name.clone(),
        }
    }
}

impl Drop for HandleInner {
    fn drop(&mut self) {
        if let Ok(mut sender) = self.sender.lock() {
            sender.take();
        }
    }
}

fn serve(
    name: &str,
    mut session: Session,
    info: &ModelInfo,
    jobs: &mpsc::Receiver<Job>,
    in_flight: &AtomicUsize,
) {
    // Sessions log verbosely while they are built (to report node placement); runs need not.
    let mut options = RunOptions::new();
    if let Ok(options) = options.as_mut() {
        let _ = options.set_log_level(LogLevel::Warning);
    }
    while let Ok(job) = jobs.recv() {
        let _span = tracing::debug_span!("run", model = name).entered();
        let result = match options.as_ref() {
            Ok(options) => run_once(name, &mut session, info, job.inputs, options),
            Err(e) => Err(RuntimeError::Ort(ort::Error::new(e.to_string()))),
        };
        // Counted down before replying, so a caller that has its answer sees the count without it.
        in_flight.fetch_sub(1, Ordering::Relaxed);
        // The caller may have gone away (a cancelled future); its result is then dropped.
        let _ = job.reply.send(result);
    }
}

fn run_once(
    name: &str,
    session: &mut Session,
    info: &ModelInfo,
    inputs: Inputs,
    options: &RunOptions,
) -> Result<Outputs, RuntimeError> {
    let mut values: Vec<(String, DynValue)> = Vec::with_capacity(inputs.0.len());
    for (input, tensor) in inputs.0 {
        values.push((input, to_ort(tensor)?));
    }
    let outputs = session.run_with_options(values, options)?;
    let mut result = Outputs {
        model: name.to_owned(),
        values: Vec::with_capacity(info.outputs.len()),
    };
    for (output, value) in outputs.iter() {
        let tensor = from_ort(&value).map_err(|reason| RuntimeError::Output {
            model: name.to_owned(),
            name: output.to_owned(),
            reason,
        })?;
        result.values.push((output.to_owned(), tensor));
    }
    Ok(result)
}

fn to_ort(tensor: Tensor) -> Result<DynValue, RuntimeError> {
    Ok(match tensor {
        Tensor::F32(a) => OrtTensor::from_array(a)?.into_dyn(),
        Tensor::F16(a) => OrtTensor::from_array(a)?.into_dyn(),
        Tensor::I64(a) => OrtTensor::from_array(a)?.into_dyn(),
        Tensor::I32(a) => OrtTensor::from_array(a)?.into_dyn(),
        Tensor::Bool(a) => OrtTensor::from_array(a)?.into_dyn(),
        Tensor::U8(a) => OrtTensor::from_array(a)?.into_dyn(),
    })
}

fn from_ort(value: &ort::value::ValueRef<'_>) -> Result<Tensor, String> {
    fn extract<T: Element + ort::value::PrimitiveTensorElementType>(
        value: &ort::value::ValueRef<'_>,
    ) -> Result<Tensor, String> {
        value
            .try_extract_array::<T>()
            .map(|a| T::wrap(a.to_owned()))
            .map_err(|e| e.to_string())
    }
    match value.dtype() {
        ValueType::Tensor { ty, .. } => match ty {
            TensorElementType::Float32 => extract::<f32>(value),
            TensorElementType::Float16 => extract::<half::f16>(value),
            TensorElementType::Int64 => extract::<i64>(value),
            TensorElementType::Int32 => extract::<i32>(value),
            TensorElementType::Bool => extract::<bool>(value),
            TensorElementType::Uint8 => extract::<u8>(value),
            other => Err(format!("element type {other:?} is not supported")),
        },
        other => Err(format!("{other:?} outputs are not supported")),
    }
}
