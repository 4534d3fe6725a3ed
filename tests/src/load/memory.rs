//! Memory of the platform's processes as the kernel accounts it: `VmRSS`
//! (resident now) and `VmHWM` (the most it was ever resident) from
//! `/proc/<pid>/status`, so a figure includes everything the allocator
//! holds, not what the process believes it uses.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

/// One reading, in KiB as the kernel reports it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Reading {
    pub rss_kib: u64,
    pub hwm_kib: u64,
}

/// `None` once the process is gone.
pub fn read(pid: u32) -> Option<Reading> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| {
        status.lines().find_map(|l| {
            l.strip_prefix(name)?
                .trim()
                .trim_end_matches("kB")
                .trim()
                .parse::<u64>()
                .ok()
        })
    };
    Some(Reading {
        rss_kib: field("VmRSS:")?,
        hwm_kib: field("VmHWM:")?,
    })
}

pub fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

/// The highest `VmRSS` seen per process while it runs, sampled every
/// `every`; `VmHWM` alone would also count start-up and seeding peaks.
pub struct Sampler {
    peaks: Arc<Mutex<BTreeMap<String, u64>>>,
    stop: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

impl Sampler {
    pub fn start(pids: Vec<(String, u32)>, every: Duration) -> Self {
        let peaks = Arc::new(Mutex::new(BTreeMap::new()));
        let stop = CancellationToken::new();
        let task = tokio::spawn({
            let (peaks, stop) = (peaks.clone(), stop.clone());
            async move {
                loop {
                    for (name, pid) in &pids {
                        if let Some(r) = read(*pid) {
                            let mut peaks = peaks.lock().expect("peaks");
                            let peak = peaks.entry(name.clone()).or_insert(0);
                            *peak = (*peak).max(r.rss_kib);
                        }
                    }
                    tokio::select! {
                        _ = stop.cancelled() => return,
                        _ = tokio::time::sleep(every) => {}
                    }
                }
            }
        });
        Self { peaks, stop, task }
    }

    /// Stops sampling; the peak `VmRSS` per process name, in KiB.
    pub async fn finish(self) -> BTreeMap<String, u64> {
        self.stop.cancel();
        let _ = self.task.await;
        self.peaks.lock().expect("peaks").clone()
    }
}
