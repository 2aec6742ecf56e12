//! One client connection's state machine: TLS and Hello, then frames checked, admitted and
//! handed to the worker, replies written, until the peer leaves or a deadline passes.

use std::net::{Shutdown, TcpStream};
use std::sync::atomic::Ordering;
use std::sync::mpsc::{self, SyncSender};
use std::time::Instant;

use super::admission::{CLOSE_GRACE, admit, linger_close};
use super::auth::same_secret;
use super::{PRE_HELLO_MAX_FRAME, Shared, lock, secure};
use coinfer_codec::CodecId;

use crate::error::{ErrorCode, RuntimeError};
use crate::frame::{Frame, FrameBody, read_frame_admitted, split_hello, write_frame};
use crate::transport::{Clock, Socket, Transport};
use crate::worker::Job;

/// One client connection, served on its own thread.
pub(super) struct Connection<'a> {
    pub(super) stream: Transport<rustls::ServerConnection>,
    pub(super) id: u64,
    pub(super) accepted: Instant,
    pub(super) shared: &'a Shared,
    pub(super) jobs: SyncSender<Job>,
    pub(super) greeted: bool,
    /// After the Hello: the plan greeted for (`None`: the whole plan set).
    pub(super) plan: Option<usize>,
}

/// What to do with the connection after a frame.
pub(super) enum Next {
    Continue,
    Close,
    /// Send nothing more; linger so the last reply is not lost, then close.
    LingerClose,
}

impl<'a> Connection<'a> {
    /// Configures the socket and, on a TLS server, runs the TLS handshake under the Hello
    /// deadline; `None` when the connection ended there (refused, timed out, gone).
    pub(super) fn open(
        tcp: TcpStream,
        id: u64,
        shared: &'a Shared,
        jobs: SyncSender<Job>,
    ) -> Option<Self> {
        let config = &shared.config;
        let accepted = Instant::now();
        let hello_deadline = accepted + config.hello_timeout;
        tcp.set_nodelay(true)
            .and_then(|()| tcp.set_read_timeout(Some(config.read_timeout)))
            .and_then(|()| tcp.set_write_timeout(Some(config.write_timeout)))
            .ok()?;
        let mut socket = Socket::new(tcp, None);
        socket.set_clock(Clock {
            idle: config.read_timeout,
            frame: config.frame_timeout,
            deadline: Some(hello_deadline),
        });
        let stream = match &config.tls {
            None => Transport::Plain(socket),
            Some(tls) => secure(shared, tls, socket, hello_deadline)?,
        };
        Some(Self {
            stream,
            id,
            accepted,
            shared,
            jobs,
            greeted: false,
            plan: None,
        })
    }

    pub(super) fn run(mut self) {
        let shared = self.shared;
        let config = &shared.config;
        let next = loop {
            let greeted = self.greeted;
            self.stream.socket_mut().set_clock(Clock {
                idle: config.read_timeout,
                frame: config.frame_timeout,
                deadline: (!greeted).then(|| self.accepted + config.hello_timeout),
            });
            let max_frame = if greeted {
                shared.max_frame
            } else {
                shared.max_frame.min(PRE_HELLO_MAX_FRAME)
            };
            let mut refusal = None;
            let read = read_frame_admitted(&mut self.stream, max_frame, |head| {
                admit(shared, greeted, head).map_err(|r| {
                    refusal = Some(r);
                    RuntimeError::ConnectionClosed
                })
            });
            if let Some((id, code, message)) = refusal {
                // The payload was not read: the stream is out of sync.
                shared.stats.over_budget.fetch_add(1, Ordering::Relaxed);
                self.reply_error(id, code, &message);
                break Next::LingerClose;
            }
            let next = match read {
                Ok((frame, budget)) => {
                    let next = self.handle(frame);
                    drop(budget);
                    next
                }
                Err(RuntimeError::ConnectionClosed) => Next::Close,
                Err(RuntimeError::Timeout { .. }) => {
                    shared.stats.timed_out.fetch_add(1, Ordering::Relaxed);
                    Next::Close
                }
                // The TLS layer broke (rustls sent its alert): no frame can follow.
                Err(RuntimeError::Tls { .. }) => {
                    shared.stats.tls_refused.fetch_add(1, Ordering::Relaxed);
                    Next::LingerClose
                }
                Err(e) if e.keeps_stream_in_sync() => {
                    self.reply_error(e.request_id().unwrap_or(0), e.code(), &e.to_string())
                }
                // Resets and ends inside a frame: the peer is gone, and a reply would most
                // likely not be read.
                Err(RuntimeError::Io { .. } | RuntimeError::Truncated { .. }) => Next::Close,
                // Bad magic, version or length: the stream is out of sync, say why and close.
                Err(e) => {
                    self.reply_error(e.request_id().unwrap_or(0), e.code(), &e.to_string());
                    Next::LingerClose
                }
            };
            if !matches!(next, Next::Continue) || self.shared.shutting_down.load(Ordering::SeqCst) {
                break next;
            }
        };
        let stream = self.stream.close(CLOSE_GRACE);
        match next {
            Next::LingerClose => linger_close(stream),
            Next::Continue | Next::Close => {
                let _ = stream.shutdown(Shutdown::Both);
            }
        }
    }

    /// Sends an error frame; closes the connection if that fails.
    fn reply_error(&mut self, request_id: u64, code: ErrorCode, message: &str) -> Next {
        let frame = Frame::error(
            request_id,
            self.shared.plan,
            self.shared.codec,
            code,
            message,
        );
        match write_frame(&mut self.stream, &frame) {
            Ok(_) => {
                self.shared.stats.errors.fetch_add(1, Ordering::Relaxed);
                Next::Continue
            }
            Err(_) => Next::Close,
        }
    }

    fn handle(&mut self, frame: Frame) -> Next {
        let shared = self.shared;
        let id = frame.request_id;
        let kind = frame.kind();
        let shape = frame.shape_usize();
        match frame.body {
            FrameBody::Hello { digest } => self.handshake(&digest, frame.codec, frame.shape),
            // Nothing but Hello (or Bye) is served before the handshake.
            FrameBody::Infer { .. } if !self.greeted => self.reply_error(
                id,
                ErrorCode::UnexpectedFrame,
                &format!("request {id}: Infer before the Hello handshake"),
            ),
            FrameBody::Infer { payload } => {
                let served = match self.plan {
                    Some(i) if frame.plan == shared.plans[i].tag => i,
                    Some(i) => {
                        return self.reply_error(
                            id,
                            ErrorCode::DigestMismatch,
                            &format!(
                                "request {id}: plan tag {} is not the server's {} (plan {})",
                                frame.plan, shared.plans[i].tag, shared.plans[i].digest
                            ),
                        );
                    }
                    None => match shared.plans.iter().position(|p| p.tag == frame.plan) {
                        Some(i) => i,
                        None => {
                            return self.reply_error(
                                id,
                                ErrorCode::PlanNotInSet,
                                &format!(
                                    "request {id}: plan tag {} is not one of the {} plans of the \
                                     server's plan set {}",
                                    frame.plan,
                                    shared.plans.len(),
                                    shared.digest
                                ),
                            );
                        }
                    },
                };
                let plan = &shared.plans[served];
                if frame.codec != plan.codec {
                    return self.reply_error(
                        id,
                        ErrorCode::CodecMismatch,
                        &format!(
                            "request {id}: feature encoded with {} but the server decodes {}",
                            frame.codec, plan.codec
                        ),
                    );
                }
                if shape[1..] != plan.feature {
                    return self.reply_error(
                        id,
                        ErrorCode::ShapeMismatch,
                        &format!(
                            "request {id}: feature shape {shape:?} does not fit the plan's split \
                             feature [B, {}, {}, {}]",
                            plan.feature[0], plan.feature[1], plan.feature[2]
                        ),
                    );
                }
                self.infer(id, served, shape, payload)
            }
            FrameBody::Bye => Next::Close,
            FrameBody::Result { .. } | FrameBody::Error { .. } => self.reply_error(
                id,
                ErrorCode::UnexpectedFrame,
                &format!("request {id}: a client sends Hello, Infer or Bye, not {kind:?}"),
            ),
        }
    }

    fn handshake(&mut self, text: &str, codec: CodecId, shape: [u32; 4]) -> Next {
        let shared = self.shared;
        let (digest, token) = split_hello(text);
        let authorized = match (&shared.config.token, token) {
            (None, _) => true,
            (Some(expected), Some(given)) => {
                same_secret(expected.expose().as_bytes(), given.as_bytes())
            }
            (Some(_), None) => false,
        };
        let refusal = if !authorized {
            Some((
                ErrorCode::Unauthorized,
                match token {
                    Some(_) => "the deployment token is wrong".to_string(),
                    None => "this server needs a deployment token in the Hello".to_string(),
                },
            ))
        } else if shared.is_set && digest == shared.digest {
            // A plan-set client: each request names its plan.
            self.plan = None;
            None
        } else {
            match shared.plans.iter().position(|p| p.digest == digest) {
                None => Some((
                    ErrorCode::DigestMismatch,
                    format!(
                        "plan digest mismatch: server has {}, client has {digest}",
                        shared.digest
                    ),
                )),
                Some(i) => {
                    let plan = &shared.plans[i];
                    self.plan = Some(i);
                    if codec != plan.codec {
                        Some((
                            ErrorCode::CodecMismatch,
                            format!(
                                "codec mismatch: server decodes {}, client encodes {codec}",
                                plan.codec
                            ),
                        ))
                    } else if shape.map(|d| d as usize)[1..] != plan.feature {
                        Some((
                            ErrorCode::ShapeMismatch,
                            format!(
                                "split feature mismatch: server expects {:?}, client sends {:?}",
                                plan.feature,
                                &shape[1..]
                            ),
                        ))
                    } else {
                        None
                    }
                }
            }
        };
        if let Some((code, message)) = refusal {
            self.reply_error(0, code, &message);
            return Next::LingerClose;
        }
        // The answer names what the client greeted: its plan, or the set (echoing the
        // client's codec and feature, which a set does not check).
        let greeting = match self.plan {
            Some(i) => {
                let plan = &shared.plans[i];
                Frame::hello(&plan.digest, plan.codec, plan.feature)
            }
            None => Frame::hello(
                &shared.digest,
                codec,
                [shape[1] as usize, shape[2] as usize, shape[3] as usize],
            ),
        };
        let reply = match greeting {
            Ok(reply) => reply,
            Err(e) => {
                self.reply_error(0, ErrorCode::Internal, &e.to_string());
                return Next::LingerClose;
            }
        };
        match write_frame(&mut self.stream, &reply) {
            Ok(_) => {
                self.greeted = true;
                lock(&shared.unauthenticated).remove(&self.id);
                Next::Continue
            }
            Err(_) => Next::Close,
        }
    }

    fn infer(&mut self, request_id: u64, plan: usize, shape: [usize; 4], payload: Vec<u8>) -> Next {
        let (reply, answer) = mpsc::channel();
        let job = Job {
            request_id,
            plan,
            shape,
            payload,
            enqueued: Instant::now(),
            reply,
        };
        if self.jobs.send(job).is_err() {
            self.reply_error(
                request_id,
                ErrorCode::ShuttingDown,
                "the edge worker has stopped",
            );
            return Next::LingerClose;
        }
        let answer = match answer.recv() {
            Ok(Ok(answer)) => answer,
            Ok(Err((code, message))) => return self.reply_error(request_id, code, &message),
            Err(_) => {
                self.reply_error(
                    request_id,
                    ErrorCode::Internal,
                    "the edge worker dropped the request",
                );
                return Next::LingerClose;
            }
        };
        let frame = Frame {
            request_id,
            plan: self.shared.plans[plan].tag,
            codec: self.shared.plans[plan].codec,
            shape: [answer.batch as u32, answer.classes as u32, 1, 1],
            body: FrameBody::Result {
                timing: answer.timing,
                logits: answer.logits,
            },
        };
        match write_frame(&mut self.stream, &frame) {
            Ok(_) => {
                self.shared.stats.results.fetch_add(1, Ordering::Relaxed);
                Next::Continue
            }
            Err(_) => Next::Close,
        }
    }
}
