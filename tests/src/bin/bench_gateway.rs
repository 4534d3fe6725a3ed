//! Load generator for the edge: HTTP → gateway (auth, policy, limits, span,
//! metrics) → NATS RPC → a service's ping → back, measured beside raw NATS
//! request/reply to the same ping subject in the same run, then latency at a
//! fixed request rate. Everything runs in this process on loopback: the
//! load generator, the gateway and the backend service (a real
//! `ServiceHost`), so on a small machine they share the cores. Bounded in
//! seconds and in requests.
//!
//!   deploy/local/bench gateway [-- --seconds 10]
//!   cargo run --release -p vbp-tests --bin bench_gateway -- --nats-url nats://127.0.0.1:4222
//!
//! Postgres (for the service host) comes from `VBP_TEST_DATABASE_URL`, as in
//! the tests; NATS from `--nats-url` or `VBP_TEST_NATS_URL`.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use clap::Parser;
use hdrhistogram::Histogram;
use serde_json::json;
use tokio_util::sync::CancellationToken;
use vbp_contracts::{Service, system};
use vbp_gateway::{Gateway, GatewayConfig, RouteTable};
use vbp_kernel::{OrgId, OrgKind, RegionCode};
use vbp_platform::ServiceHost;
use vbp_platform::testkit::TestEnv;

#[derive(Parser, Debug)]
struct Args {
    /// NATS of the run (a private server: the bench floods it).
    #[arg(long, env = "VBP_TEST_NATS_URL")]
    nats_url: String,
    /// Seconds of each closed-loop measurement (gateway, raw NATS).
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Requests in flight in the closed-loop measurements.
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// Requests per second of the fixed-rate measurement.
    #[arg(long, default_value_t = 2_000)]
    rate: u64,
    /// Seconds of the fixed-rate measurement.
    #[arg(long, default_value_t = 5)]
    rate_seconds: u64,
    /// Seconds of warm-up before each measurement (not counted).
    #[arg(long, default_value_t = 1)]
    warmup_seconds: u64,
    /// Stop a measurement after this many requests even if time remains.
    #[arg(long, default_value_t = 5_000_000)]
    max_requests: u64,
    /// HTTP load generator: `lean` (a minimal keep-alive HTTP/1.1 client, like
    /// wrk, so the generator takes little of the shared cores) or `reqwest`.
    #[arg(long, value_enum, default_value_t = Client::Lean)]
    client: Client,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Client {
    Lean,
    Reqwest,
}

/// One keep-alive HTTP/1.1 connection sending the same GET over and over:
/// the whole client is a write, then reads until the headers and
/// `Content-Length` bytes of body are in.
struct LeanConnection {
    stream: tokio::net::TcpStream,
    buf: Vec<u8>,
}

impl LeanConnection {
    async fn open(addr: &str) -> std::io::Result<Self> {
        let stream = tokio::net::TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        Ok(Self {
            stream,
            buf: Vec::with_capacity(4096),
        })
    }

    /// Sends `request` and returns the response status.
    async fn send(&mut self, request: &[u8]) -> std::io::Result<u16> {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        self.stream.write_all(request).await?;
        loop {
            if let Some((status, len)) = complete_response(&self.buf) {
                self.buf.drain(..len);
                return Ok(status);
            }
            if self.stream.read_buf(&mut self.buf).await? == 0 {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
        }
    }
}

/// The status and total length of the response at the start of `buf`, once
/// it is all there.
fn complete_response(buf: &[u8]) -> Option<(u16, usize)> {
    let head_end = buf.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
    let head = std::str::from_utf8(&buf[..head_end]).ok()?;
    let status = head.get(9..12)?.parse().ok()?;
    let body_len: usize = head
        .lines()
        .find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.eq_ignore_ascii_case("content-length")
                .then(|| value.trim().parse().ok())?
        })
        .unwrap_or(0);
    (buf.len() >= head_end + body_len).then_some((status, head_end + body_len))
}

struct Outcome {
    ok: u64,
    failed: u64,
    elapsed: Duration,
    latency: Histogram<u64>,
}

impl Outcome {
    fn rate(&self) -> f64 {
        self.ok as f64 / self.elapsed.as_secs_f64()
    }

    fn ms(&self, quantile: f64) -> f64 {
        self.latency.value_at_quantile(quantile) as f64 / 1_000.0
    }

    fn print(&self, name: &str) {
        println!(
            "{name:<34} {:>9.0} req/s   p50 {:>6.2} ms   p99 {:>6.2} ms   max {:>7.2} ms   ok {}  failed {}",
            self.rate(),
            self.ms(0.50),
            self.ms(0.99),
            self.latency.max() as f64 / 1_000.0,
            self.ok,
            self.failed,
        );
    }
}

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000, 3).expect("histogram bounds")
}

/// One in-flight request at a time, reusing what it needs (a connection).
trait Caller: Send + 'static {
    /// Whether the request succeeded.
    fn call(&mut self) -> impl std::future::Future<Output = bool> + Send;
}

struct LeanCaller {
    connection: LeanConnection,
    request: Arc<String>,
}

impl Caller for LeanCaller {
    async fn call(&mut self) -> bool {
        matches!(
            self.connection.send(self.request.as_bytes()).await,
            Ok(200..=299)
        )
    }
}

struct ReqwestCaller {
    http: reqwest::Client,
    url: String,
    token: String,
}

impl Caller for ReqwestCaller {
    async fn call(&mut self) -> bool {
        self.http
            .get(&self.url)
            .bearer_auth(&self.token)
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
    }
}

struct NatsCaller {
    nats: async_nats::Client,
    subject: String,
}

impl Caller for NatsCaller {
    async fn call(&mut self) -> bool {
        self.nats
            .request(self.subject.clone(), Bytes::from_static(b"{}"))
            .await
            .is_ok()
    }
}

/// One loop per caller, each issuing its next request when the previous
/// answered, for `seconds` (after a warm-up that is not recorded).
async fn closed_loop<C: Caller>(args: &Args, callers: Vec<C>) -> Outcome {
    let warmup_until = Instant::now() + Duration::from_secs(args.warmup_seconds);
    let measure_until = warmup_until + Duration::from_secs(args.seconds);
    let budget = Arc::new(AtomicI64::new(
        i64::try_from(args.max_requests).unwrap_or(i64::MAX),
    ));
    let mut tasks = Vec::new();
    for mut caller in callers {
        let budget = budget.clone();
        tasks.push(tokio::spawn(async move {
            let (mut ok, mut failed, mut latency) = (0u64, 0u64, histogram());
            loop {
                let started = Instant::now();
                if started >= measure_until {
                    break;
                }
                let success = caller.call().await;
                if started < warmup_until {
                    continue;
                }
                if budget.fetch_sub(1, Ordering::Relaxed) <= 0 {
                    break;
                }
                if success {
                    ok += 1;
                    let _ = latency.record(started.elapsed().as_micros() as u64);
                } else {
                    failed += 1;
                }
            }
            (ok, failed, latency)
        }));
    }
    let mut total = Outcome {
        ok: 0,
        failed: 0,
        elapsed: Duration::ZERO,
        latency: histogram(),
    };
    for task in tasks {
        let (ok, failed, latency) = task.await.expect("load task");
        total.ok += ok;
        total.failed += failed;
        let _ = total.latency.add(latency);
    }
    total.elapsed = Instant::now()
        .min(measure_until)
        .saturating_duration_since(warmup_until);
    total
}

/// Open loop: one request every `1/rate` s whatever the answers do, timed
/// from when it was due, so a stall shows up as latency (no coordinated
/// omission).
async fn fixed_rate(args: &Args, http: reqwest::Client, url: String, token: String) -> Outcome {
    let interval = Duration::from_secs_f64(1.0 / args.rate as f64);
    let total_requests = (args.rate * args.rate_seconds).min(args.max_requests);
    let start = Instant::now();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    for i in 0..total_requests {
        let due = start + interval.mul_f64(i as f64);
        tokio::time::sleep_until(due.into()).await;
        let (http, url, token, tx) = (http.clone(), url.clone(), token.clone(), tx.clone());
        tokio::spawn(async move {
            let success = http
                .get(&url)
                .bearer_auth(&token)
                .send()
                .await
                .is_ok_and(|r| r.status().is_success());
            let _ = tx.send((success, due.elapsed()));
        });
    }
    drop(tx);
    let mut outcome = Outcome {
        ok: 0,
        failed: 0,
        elapsed: Duration::ZERO,
        latency: histogram(),
    };
    while let Some((success, took)) = rx.recv().await {
        if success {
            outcome.ok += 1;
            let _ = outcome.latency.record(took.as_micros() as u64);
        } else {
            outcome.failed += 1;
        }
    }
    outcome.elapsed = start.elapsed();
    outcome
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let env = TestEnv::with_nats(args.nats_url.clone()).await;
    let shutdown = CancellationToken::new();

    // The backend: a real service host (its ping is the standard one), on
    // its own connection as in a microservice deployment.
    let backend = env.platform_with(env.config(), shutdown.clone()).await;
    let host = ServiceHost::start(
        &backend,
        Service::Agreements,
        sqlx::migrate::Migrator::DEFAULT,
    )
    .await?;
    tokio::spawn(host.run());

    let platform = env.platform_with(env.config(), shutdown.clone()).await;
    let config = GatewayConfig {
        rate_limit_per_sec: 0.0,
        concurrency_limit: 4 * args.concurrency.max(1024),
        ..GatewayConfig::default()
    };
    let gateway = Gateway::new(platform.clone(), config, RouteTable::standard())?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!(
        "http://{}/api/v1/services/agreements/ping",
        listener.local_addr()?
    );
    tokio::spawn(vbp_gateway::serve(gateway, listener, shutdown.clone()));

    let secret = vbp_gateway::token::dev_secret(&platform.config)?;
    let token = vbp_gateway::token::mint_dev(
        &secret,
        "bench",
        OrgId::new(),
        OrgKind::Operator,
        RegionCode::NATIONAL,
        &[] as &[&str],
        Duration::from_secs(3600),
        platform.clock.now(),
    )?;
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(args.concurrency)
        .tcp_nodelay(true)
        .build()?;

    // Wait until the path answers end to end.
    let ready_by = Instant::now() + Duration::from_secs(60);
    loop {
        let answer = http.get(&url).bearer_auth(&token).send().await;
        if answer.as_ref().is_ok_and(|r| r.status().is_success()) {
            break;
        }
        anyhow::ensure!(
            Instant::now() < ready_by,
            "the gateway never answered: {answer:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    println!(
        "gateway benchmark: {} s per closed-loop run at concurrency {}, {} s at {} req/s; {} CPUs",
        args.seconds,
        args.concurrency,
        args.rate_seconds,
        args.rate,
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    );

    let addr = url
        .trim_start_matches("http://")
        .split('/')
        .next()
        .unwrap_or_default()
        .to_owned();
    let path = url
        .trim_start_matches("http://")
        .trim_start_matches(addr.as_str())
        .to_owned();
    let raw_request = Arc::new(format!(
        "GET {path} HTTP/1.1\r\nhost: {addr}\r\nauthorization: Bearer {token}\r\n\r\n"
    ));
    let gateway_run = match args.client {
        Client::Lean => {
            let mut callers = Vec::new();
            for _ in 0..args.concurrency {
                callers.push(LeanCaller {
                    connection: LeanConnection::open(&addr).await?,
                    request: raw_request.clone(),
                });
            }
            closed_loop(&args, callers).await
        }
        Client::Reqwest => {
            let callers = (0..args.concurrency)
                .map(|_| ReqwestCaller {
                    http: http.clone(),
                    url: url.clone(),
                    token: token.clone(),
                })
                .collect();
            closed_loop(&args, callers).await
        }
    };
    gateway_run.print("(a) HTTP → gateway → RPC ping");

    let subject = platform.ns.rpc(Service::Agreements, system::PING);
    let raw_run = closed_loop(
        &args,
        (0..args.concurrency)
            .map(|_| NatsCaller {
                nats: platform.nats.clone(),
                subject: subject.clone(),
            })
            .collect(),
    )
    .await;
    raw_run.print("(b) raw NATS request/reply ping");

    let paced = fixed_rate(&args, http.clone(), url.clone(), token.clone()).await;
    paced.print(&format!("(c) gateway at a fixed {} req/s", args.rate));

    let ratio = gateway_run.rate() / raw_run.rate().max(1.0);
    println!("gateway / raw request-reply = {ratio:.2}");
    let verdict = |ok: bool| if ok { "met" } else { "NOT met" };
    println!(
        "targets: ≥ 20000 req/s {} | ≥ 1/3 of raw {} | p99 < 20 ms at {} req/s {}",
        verdict(gateway_run.rate() >= 20_000.0),
        verdict(ratio >= 1.0 / 3.0),
        args.rate,
        verdict(paced.ms(0.99) < 20.0)
    );
    println!(
        "{}",
        json!({
            "gateway_rps": gateway_run.rate().round(),
            "gateway_p50_ms": gateway_run.ms(0.5),
            "gateway_p99_ms": gateway_run.ms(0.99),
            "raw_rps": raw_run.rate().round(),
            "raw_p50_ms": raw_run.ms(0.5),
            "raw_p99_ms": raw_run.ms(0.99),
            "fixed_rate": args.rate,
            "fixed_p50_ms": paced.ms(0.5),
            "fixed_p99_ms": paced.ms(0.99),
            "ratio": (ratio * 100.0).round() / 100.0,
        })
    );
    shutdown.cancel();
    Ok(())
}
