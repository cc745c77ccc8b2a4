//! The coordinator's view of its workers: child processes (the binary re-executing itself as
//! `parkmate-bench worker`) or, for tests, tasks in this runtime. Both answer the same commands.

use std::path::Path;
use std::process::Stdio;

use anyhow::{Context, bail};
use futures_util::future::join_all;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout};
use tokio::sync::{mpsc, oneshot};

use crate::proto::{Command, Reply};
use crate::worker::WorkerCore;

/// Most sockets one worker may hold: a process may have 20,000 file descriptors here.
pub const MAX_SOCKETS_PER_WORKER: usize = 18_000;

enum Handle {
    Local(mpsc::Sender<(Command, oneshot::Sender<Reply>)>),
    Process(Box<Proc>),
}

/// A worker child process and its pipes.
struct Proc {
    child: Child,
    stdin: ChildStdin,
    stdout: Lines<BufReader<ChildStdout>>,
}

pub struct Worker {
    handle: Handle,
}

impl Worker {
    pub async fn call(&mut self, cmd: &Command) -> anyhow::Result<Reply> {
        match &mut self.handle {
            Handle::Local(tx) => {
                let (reply_tx, reply_rx) = oneshot::channel();
                tx.send((cmd.clone(), reply_tx))
                    .await
                    .context("local worker is gone")?;
                reply_rx.await.context("local worker did not answer")
            }
            Handle::Process(p) => {
                let Proc { stdin, stdout, .. } = &mut **p;
                let mut line = serde_json::to_vec(cmd)?;
                line.push(b'\n');
                stdin.write_all(&line).await.context("worker stdin")?;
                stdin.flush().await?;
                let Some(answer) = stdout.next_line().await.context("worker stdout")? else {
                    bail!("worker exited without answering");
                };
                serde_json::from_str(&answer).with_context(|| format!("worker answered `{answer}`"))
            }
        }
    }

    pub fn pid(&self) -> Option<u32> {
        match &self.handle {
            Handle::Local(_) => None,
            Handle::Process(p) => p.child.id(),
        }
    }
}

pub struct Fleet {
    pub workers: Vec<Worker>,
}

impl Fleet {
    /// `n` workers as tasks of the current runtime (tests, tiny runs).
    pub fn local(n: usize) -> Fleet {
        let workers = (0..n.max(1))
            .map(|_| {
                let (tx, mut rx) = mpsc::channel::<(Command, oneshot::Sender<Reply>)>(4);
                tokio::spawn(async move {
                    let mut core = WorkerCore::new(false);
                    while let Some((cmd, reply)) = rx.recv().await {
                        let quit = matches!(cmd, Command::Quit);
                        let _ = reply.send(core.handle(cmd).await);
                        if quit {
                            break;
                        }
                    }
                });
                Worker {
                    handle: Handle::Local(tx),
                }
            })
            .collect();
        Fleet { workers }
    }

    /// `n` worker processes running `exe worker`.
    pub fn processes(n: usize, exe: &Path) -> anyhow::Result<Fleet> {
        let mut workers = Vec::with_capacity(n);
        for _ in 0..n.max(1) {
            let mut child = tokio::process::Command::new(exe)
                .arg("worker")
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::inherit())
                .kill_on_drop(true)
                .spawn()
                .with_context(|| format!("cannot start worker {}", exe.display()))?;
            let stdin = child.stdin.take().context("worker stdin")?;
            let stdout = BufReader::new(child.stdout.take().context("worker stdout")?).lines();
            workers.push(Worker {
                handle: Handle::Process(Box::new(Proc {
                    child,
                    stdin,
                    stdout,
                })),
            });
        }
        Ok(Fleet { workers })
    }

    /// Sends each worker its command (built from its index) and waits for all answers.
    pub async fn call_each(
        &mut self,
        cmd: impl Fn(usize) -> Command,
    ) -> anyhow::Result<Vec<Reply>> {
        let calls = self.workers.iter_mut().enumerate().map(|(i, w)| {
            let c = cmd(i);
            async move { w.call(&c).await }
        });
        let replies = join_all(calls)
            .await
            .into_iter()
            .collect::<anyhow::Result<Vec<_>>>()?;
        for r in &replies {
            if let Reply::Error { message } = r {
                bail!("worker: {message}");
            }
        }
        Ok(replies)
    }

    pub async fn call_all(&mut self, cmd: &Command) -> anyhow::Result<Vec<Reply>> {
        self.call_each(|_| cmd.clone()).await
    }

    /// Asks every worker to close its sockets and exit.
    pub async fn quit(mut self) {
        let _ = self.call_all(&Command::Quit).await;
        for w in &mut self.workers {
            if let Handle::Process(p) = &mut w.handle {
                let _ =
                    tokio::time::timeout(std::time::Duration::from_secs(5), p.child.wait()).await;
            }
        }
    }
}
