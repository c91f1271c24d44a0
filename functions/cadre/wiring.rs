//! The composition root: reads configuration once and builds the adapters behind each port.
//!
//! This is the only place that reads environment variables and the only place that knows which
//! adapter implements which port.

use anyhow::{bail, Context, Result};
use cadre_domain::ports::clock::SystemClock;
use cadre_domain::ports::knowledge::Embedder;
use cadre_domain::ports::model_cache::ModelCache;
use cadre_domain::ports::usage::UsageLedger;
use cadre_domain::ports::Sandbox;
use cadre_domain::ports::{Clock, Model, Queue, StateStore};
use cadre_domain::Ports;
use cadre_knowledge::EmbeddedKnowledge;
use cadre_model::embed::{
    EmbedGateway, EmbedGatewayConfig, EmbeddingProvider, GeminiEmbeddings, GeminiEmbeddingsConfig,
    OpenAiEmbeddings, OpenAiEmbeddingsConfig,
};
use cadre_model::{
    parse_model_spec, ApiKey, Gateway, GatewayConfig, GatewayPorts, GeminiConfig, GeminiModel,
    ModelSpec, OpenAiCompatConfig, OpenAiCompatModel, PriceTable, RateLimit, RecordingModel,
    ReplayModel,
};
use cadre_queue::{EmbeddedQueue, QueueConfig};
use cadre_sandbox::{HostSandbox, Runner, YoukiConfig, YoukiSandbox};
use cadre_store::SqliteStore;
use cadre_usage::{SqliteModelCache, SqliteUsageLedger};
use cadre_vcs::GitWorkspace;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::cli::{ModelArgs, SandboxKind};

/// The hidden subcommand under which `cadre` runs one container (see `cadre_sandbox::runner_main`).
pub(crate) const SANDBOX_RUNNER_ARG: &str = "__sandbox-runner";

/// The name of the embedded queue that carries step messages.
const STEPS_QUEUE: &str = "steps";

/// The variables Google's libraries read to find a project and credentials.
const GOOGLE_VARS: [&str; 6] = [
    "GOOGLE_CLOUD_PROJECT",
    "GOOGLE_CLOUD_LOCATION",
    "GOOGLE_APPLICATION_CREDENTIALS",
    "CLOUDSDK_CONFIG",
    "HOME",
    "GCE_METADATA_HOST",
];

/// What the AWS SDK reads for credentials and region, and Cadre's bus setting (for `cadre doctor`).
const AWS_VARS: [&str; 9] = [
    "CADRE_BUS",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_PROFILE",
    "AWS_REGION",
    "AWS_DEFAULT_REGION",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
];

/// Environment variables Cadre reads, read once at start.
#[derive(Debug, Default)]
pub(crate) struct Environment {
    gemini_api_key: Option<String>,
    gemini_base_url: Option<String>,
    openai_api_key: Option<String>,
    embed: Option<String>,
    embed_dims: Option<String>,
    /// What Google's client conventions read (project, location, credentials, metadata host), for Vertex AI.
    google: Vec<(&'static str, String)>,
    /// What the AWS SDK reads (credentials, region) and `CADRE_BUS`; values never logged.
    aws: Vec<(&'static str, String)>,
    xdg_data_home: Option<PathBuf>,
    home: Option<PathBuf>,
    pub(crate) log_filter: Option<String>,
    /// Forge tokens, webhook secrets and the git identity (`functions/cadre/forge.rs`).
    pub(crate) forge: crate::forge::ForgeEnv,
}

impl Environment {
    #[allow(clippy::disallowed_methods)] // The one place configuration is read from the environment.
    pub(crate) fn read() -> Self {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
        Environment {
            gemini_api_key: var("GEMINI_API_KEY").or_else(|| var("GOOGLE_API_KEY")),
            gemini_base_url: var("CADRE_GEMINI_BASE_URL"),
            openai_api_key: var("OPENAI_API_KEY"),
            embed: var("CADRE_EMBED"),
            google: GOOGLE_VARS
                .iter()
                .filter_map(|name| var(name).map(|value| (*name, value)))
                .collect(),
            aws: AWS_VARS.iter().filter_map(|name| var(name).map(|value| (*name, value))).collect(),
            embed_dims: var("CADRE_EMBED_DIMS"),
            xdg_data_home: var("XDG_DATA_HOME").map(PathBuf::from),
            home: var("HOME").map(PathBuf::from),
            log_filter: var("CADRE_LOG"),
            forge: crate::forge::ForgeEnv::read(&var),
        }
    }
}

impl Environment {
    /// One of Google's client variables (`GOOGLE_APPLICATION_CREDENTIALS`, …), when set.
    pub(crate) fn google_var(&self, name: &str) -> Option<String> {
        self.google.iter().find(|(n, _)| *n == name).map(|(_, value)| value.clone())
    }

    /// One of the AWS SDK's variables or `CADRE_BUS`, when set.
    pub(crate) fn aws_var(&self, name: &str) -> Option<String> {
        self.aws.iter().find(|(n, _)| *n == name).map(|(_, value)| value.clone())
    }
}

/// Where Cadre keeps its state.
#[derive(Debug, Clone)]
pub(crate) struct Home {
    pub(crate) root: PathBuf,
}

impl Home {
    pub(crate) fn resolve(flag: Option<PathBuf>, env: &Environment) -> Result<Self> {
        let root = match (flag, &env.xdg_data_home, &env.home) {
            (Some(dir), _, _) => dir,
            (None, Some(xdg), _) => xdg.join("cadre"),
            (None, None, Some(home)) => home.join(".local/share/cadre"),
            (None, None, None) => {
                bail!("cannot tell where to keep Cadre's data; pass --home DIR or set CADRE_HOME")
            }
        };
        std::fs::create_dir_all(&root)
            .with_context(|| format!("cannot create Cadre's data directory {}", root.display()))?;
        Ok(Home { root })
    }

    pub(crate) fn database(&self) -> PathBuf {
        self.root.join("cadre.db")
    }

    pub(crate) fn worktrees(&self) -> PathBuf {
        self.root.join("worktrees")
    }

    pub(crate) fn knowledge(&self) -> PathBuf {
        self.root.join("knowledge")
    }
}

/// The adapters every command needs: the store, the queue, git, and time.
pub(crate) struct Core {
    pub(crate) store: Arc<dyn StateStore>,
    pub(crate) queue: Arc<dyn Queue>,
    pub(crate) ledger: Arc<dyn UsageLedger>,
    pub(crate) cache: Arc<dyn ModelCache>,
    pub(crate) workspace: Arc<GitWorkspace>,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) knowledge: Arc<EmbeddedKnowledge>,
}

impl Core {
    pub(crate) fn open(home: &Home) -> Result<Self> {
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        let db = home.database();
        let store = SqliteStore::open(&db)
            .with_context(|| format!("cannot open the store at {}", db.display()))?;
        let queue = EmbeddedQueue::open(&db, STEPS_QUEUE, QueueConfig::default(), clock.clone())
            .with_context(|| format!("cannot open the queue at {}", db.display()))?;
        let ledger = SqliteUsageLedger::open(&db)
            .with_context(|| format!("cannot open the usage ledger at {}", db.display()))?;
        let cache = SqliteModelCache::open(&db)
            .with_context(|| format!("cannot open the model cache at {}", db.display()))?;
        let knowledge_dir = home.knowledge();
        let knowledge = EmbeddedKnowledge::open(&knowledge_dir).with_context(|| {
            format!("cannot open the knowledge base in {}", knowledge_dir.display())
        })?;
        Ok(Core {
            store: Arc::new(store),
            queue: Arc::new(queue),
            ledger: Arc::new(ledger),
            cache: Arc::new(cache),
            workspace: Arc::new(GitWorkspace::new(home.worktrees())),
            clock,
            knowledge: Arc::new(knowledge),
        })
    }

    /// Opens `home` with the knowledge base computing embeddings when `CADRE_EMBED` asks for them
    /// (`gemini[:MODEL]` or `openai:MODEL@BASE_URL`, dimensions from `CADRE_EMBED_DIMS`, default 768):
    /// vector and fused retrieval then work; without it retrieval is lexical and says so.
    pub(crate) fn open_with_embeddings(home: &Home, env: &Environment) -> Result<Self> {
        let mut core = Core::open(home)?;
        if let Some(embedder) = embedder(env, &core)? {
            let dir = home.knowledge();
            let knowledge = EmbeddedKnowledge::open(&dir)
                .with_context(|| format!("cannot open the knowledge base in {}", dir.display()))?;
            core.knowledge = Arc::new(knowledge.with_embedder(embedder));
        }
        Ok(core)
    }

    /// Every port, for commands that run steps.
    pub(crate) fn ports(&self, model: Arc<dyn Model>, sandbox: Arc<dyn Sandbox>) -> Ports {
        Ports {
            store: self.store.clone(),
            queue: self.queue.clone(),
            model,
            sandbox,
            workspace: self.workspace.clone(),
            clock: self.clock.clone(),
            knowledge: self.knowledge.clone(),
        }
    }
}

/// Builds the sandbox the tests run in. The container sandbox is the default; when it cannot run here
/// the error says what is missing and how to choose the unisolated runner on purpose.
pub(crate) fn sandbox(
    kind: SandboxKind,
    home: &Home,
    env: &Environment,
) -> Result<Arc<dyn Sandbox>> {
    match kind {
        SandboxKind::Host => {
            tracing::warn!(
                "--sandbox host: the repository's tests run as plain processes with no isolation"
            );
            Ok(Arc::new(HostSandbox::new().with_state_dir(home.root.join("host-sandbox"))))
        }
        SandboxKind::Youki => {
            let program = std::env::current_exe()
                .context("cannot find the cadre executable to run containers")?;
            let runner = Runner { program, args: vec![SANDBOX_RUNNER_ARG.to_owned()] };
            let mut config = YoukiConfig::new(home.root.join("sandbox"), runner);
            if let Some(user_home) = &env.home {
                config = config.with_home_toolchains(user_home);
            }
            let sandbox = YoukiSandbox::new(config).context(
                "the container sandbox cannot run here; fix what is listed, or pass --sandbox host \
                 (or CADRE_SANDBOX=host) to run tests without isolation",
            )?;
            Ok(Arc::new(sandbox))
        }
    }
}

/// Builds the model from `--model` and the environment, failing early with the fix when a key is missing:
/// the provider, recorded when `--record` asks, behind the gateway (limits, retries, breaker, cache,
/// accounting and the per-task budget).
pub(crate) fn model(
    args: &ModelArgs,
    env: &Environment,
    core: &Core,
) -> Result<(Arc<dyn Model>, Option<String>)> {
    if let Some(vertex) = cadre_model::parse_vertex_spec(&args.model) {
        // Gemini on Vertex AI: project and location from GOOGLE_CLOUD_PROJECT / GOOGLE_CLOUD_LOCATION,
        // the token from Application Default Credentials or the metadata server (on Cloud Run).
        let model = vertex?;
        let lookup = |name: &str| env.google_var(name);
        let config = cadre_model::VertexConfig::from_env(model.as_deref(), &lookup)?;
        let model_id = config.model.clone();
        let provider: Arc<dyn Model> = Arc::new(GeminiModel::vertex(config)?);
        return gateway(provider, args, model_id, core).map(|m| (m, None));
    }
    let spec = parse_model_spec(&args.model)?;
    let model_id = match &spec {
        ModelSpec::Gemini { model } => {
            model.clone().unwrap_or_else(|| cadre_model::DEFAULT_GEMINI_MODEL.to_owned())
        }
        ModelSpec::OpenAi { model, .. } => model.clone(),
        ModelSpec::Replay { .. } => "replay".to_owned(),
    };
    let (model, endpoint): (Arc<dyn Model>, Option<String>) = match spec {
        ModelSpec::Gemini { model } => {
            let Some(key) = env.gemini_api_key.clone() else {
                bail!(
                    "GEMINI_API_KEY is not set; export it (a key from Google AI Studio), \
                     or use --model openai:MODEL@URL for a local server, or --model replay:FILE"
                );
            };
            let mut config = GeminiConfig::new(ApiKey::new(key)?);
            if let Some(model) = model {
                config.model = model;
            }
            if let Some(url) = &env.gemini_base_url {
                config.base_url = url.clone();
            }
            let endpoint = config.base_url.clone();
            (Arc::new(GeminiModel::new(config)?), Some(endpoint))
        }
        ModelSpec::OpenAi { model, base_url } => {
            let mut config = OpenAiCompatConfig::new(base_url.clone(), model);
            if let Some(key) = &env.openai_api_key {
                config.api_key = Some(ApiKey::new(key.clone())?);
            }
            (Arc::new(OpenAiCompatModel::new(config)?), Some(base_url))
        }
        ModelSpec::Replay { path } => (Arc::new(ReplayModel::open(&path)?), None),
    };
    Ok((gateway(model, args, model_id, core)?, endpoint))
}

/// The provider behind the gateway (and the recorder, when `--record` is given).
fn gateway(
    model: Arc<dyn Model>,
    args: &ModelArgs,
    model_id: String,
    core: &Core,
) -> Result<Arc<dyn Model>> {
    let model: Arc<dyn Model> = match &args.record {
        Some(file) => Arc::new(RecordingModel::new(model, file.clone())?),
        None => model,
    };
    let gateway = Gateway::new(
        model,
        gateway_config(args, model_id)?,
        GatewayPorts {
            ledger: core.ledger.clone(),
            cache: core.cache.clone(),
            clock: core.clock.clone(),
        },
    )?;
    Ok(Arc::new(gateway))
}

/// The embedder `CADRE_EMBED` names, behind the embedding gateway (limits, retries, accounting).
fn embedder(env: &Environment, core: &Core) -> Result<Option<Arc<dyn Embedder>>> {
    let Some(spec) = env.embed.as_deref() else { return Ok(None) };
    let dims: usize = match env.embed_dims.as_deref() {
        Some(text) => text.trim().parse().with_context(|| {
            format!("CADRE_EMBED_DIMS={text} is not a number of dimensions; set e.g. 768")
        })?,
        None => 768,
    };
    let provider: Arc<dyn EmbeddingProvider> = if spec == "gemini" || spec.starts_with("gemini:") {
        let Some(key) = env.gemini_api_key.clone() else {
            bail!("CADRE_EMBED={spec} needs GEMINI_API_KEY; export it, or unset CADRE_EMBED for lexical retrieval");
        };
        let mut config = GeminiEmbeddingsConfig::new(ApiKey::new(key)?, dims);
        if let Some(model) = spec.strip_prefix("gemini:") {
            config.model = model.to_owned();
        }
        if let Some(url) = &env.gemini_base_url {
            config.base_url = url.clone();
        }
        Arc::new(GeminiEmbeddings::new(config)?)
    } else if let Some((model, url)) = spec.strip_prefix("openai:").and_then(|s| s.split_once('@'))
    {
        let mut config = OpenAiEmbeddingsConfig::new(url, model, dims);
        if let Some(key) = &env.openai_api_key {
            config.api_key = Some(ApiKey::new(key.clone())?);
        }
        Arc::new(OpenAiEmbeddings::new(config)?)
    } else {
        bail!(
            "CADRE_EMBED={spec} is not an embedder; use gemini[:MODEL] or openai:MODEL@BASE_URL (Ollama, vLLM, llama.cpp), or unset it"
        );
    };
    let gateway = EmbedGateway::new(
        provider,
        EmbedGatewayConfig::default(),
        core.ledger.clone(),
        core.clock.clone(),
    )?;
    Ok(Some(Arc::new(gateway)))
}

/// Dollars as micro-dollars, refusing what is not a positive, finite amount.
pub(crate) fn usd_to_micros(usd: f64, flag: &str) -> Result<u64> {
    if !usd.is_finite() || usd <= 0.0 || usd > 1e9 {
        bail!("{flag} {usd} is not a positive amount of dollars; give e.g. {flag} 2.50");
    }
    // The check above keeps the value positive, finite and far below u64::MAX micro-dollars.
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    Ok((usd * 1_000_000.0).round() as u64)
}

fn gateway_config(args: &ModelArgs, model_id: String) -> Result<GatewayConfig> {
    let mut config = GatewayConfig::new(model_id);
    config.task_budget_micros = Some(usd_to_micros(args.budget_usd, "--budget-usd")?);
    config.team_daily_budget_micros = args
        .team_daily_budget_usd
        .map(|usd| usd_to_micros(usd, "--team-daily-budget-usd"))
        .transpose()?;
    config.requests = args.rpm.map(RateLimit::per_minute);
    config.tokens = args.tpm.map(RateLimit::per_minute);
    if let Some(path) = &args.prices {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the price table {}", path.display()))?;
        config.prices = PriceTable::from_json(&text)?;
    }
    // A replay re-plays recorded answers: it costs nothing, so it is never charged a default.
    let replay = matches!(parse_model_spec(&args.model), Ok(ModelSpec::Replay { .. }));
    if !replay && config.prices.price(&config.model).is_none() {
        let (input, output) = default_price(&args.default_price)?;
        tracing::warn!(
            model = %config.model,
            input_usd_per_million = input,
            output_usd_per_million = output,
            "the model is not in the price table; its calls are charged at the default price"
        );
        let price = cadre_model::ModelPrice::per_million_usd(input, output, input / 10.0);
        config.prices = std::mem::take(&mut config.prices).with(config.model.clone(), price);
    }
    Ok(config)
}

/// `INPUT:OUTPUT` USD per million tokens, as `--default-price` takes it.
fn default_price(text: &str) -> Result<(f64, f64)> {
    let parse = |part: &str| part.trim().parse::<f64>().ok().filter(|p| p.is_finite() && *p >= 0.0);
    match text.split_once(':').map(|(i, o)| (parse(i), parse(o))) {
        Some((Some(input), Some(output))) => Ok((input, output)),
        _ => bail!(
            "--default-price {text} is not INPUT:OUTPUT in USD per million tokens; give e.g. --default-price 2:12"
        ),
    }
}

/// The line `cadre task` prints when the model has no price in the table: what it is charged instead.
pub(crate) fn unpriced_note(args: &ModelArgs) -> Result<Option<String>> {
    let model_id = match parse_model_spec(&args.model) {
        Ok(ModelSpec::Gemini { model }) => {
            model.unwrap_or_else(|| cadre_model::DEFAULT_GEMINI_MODEL.to_owned())
        }
        Ok(ModelSpec::OpenAi { model, .. }) => model,
        _ => return Ok(None),
    };
    let prices = match &args.prices {
        Some(path) => PriceTable::from_json(
            &std::fs::read_to_string(path)
                .with_context(|| format!("cannot read the price table {}", path.display()))?,
        )?,
        None => PriceTable::builtin(),
    };
    if prices.price(&model_id).is_some() {
        return Ok(None);
    }
    let (input, output) = default_price(&args.default_price)?;
    Ok(Some(format!(
        "note: {model_id} is not in the price table; its calls are charged at the default ${input}/${output} per million input/output tokens (--default-price, --prices)"
    )))
}

/// Checks that a model endpoint accepts connections, so an unreachable server is reported at once
/// instead of after the engine's retries. Costs a TCP connect, no tokens.
pub(crate) async fn check_reachable(endpoint: &str) -> Result<()> {
    let (host, port) = host_port(endpoint).with_context(|| {
        format!("model endpoint {endpoint:?} is not a URL; give it as http(s)://HOST[:PORT][/PATH]")
    })?;
    let connect = tokio::net::TcpStream::connect((host.as_str(), port));
    match tokio::time::timeout(Duration::from_secs(5), connect).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(error)) => {
            bail!("model endpoint {endpoint} is unreachable: {error}; check the URL and that the server is running")
        }
        Err(_) => bail!(
            "model endpoint {endpoint} did not answer within 5 s; check the URL and your network"
        ),
    }
}

fn host_port(url: &str) -> Option<(String, u16)> {
    let (scheme, rest) = url.split_once("://")?;
    let default_port = match scheme {
        "http" => 80,
        "https" => 443,
        _ => return None,
    };
    let authority = rest.split('/').next()?;
    let authority = authority.rsplit('@').next()?;
    if let Some(v6) = authority.strip_prefix('[') {
        let (host, after) = v6.split_once(']')?;
        let port = after.strip_prefix(':').map_or(Some(default_port), |p| p.parse().ok())?;
        return Some((host.to_owned(), port));
    }
    match authority.rsplit_once(':') {
        Some((host, port)) => Some((host.to_owned(), port.parse().ok()?)),
        None => Some((authority.to_owned(), default_port)),
    }
    .filter(|(host, _)| !host.is_empty())
}

#[cfg(test)]
mod tests {
    use super::host_port;

    #[test]
    fn host_port_reads_common_urls() {
        assert_eq!(host_port("http://127.0.0.1:8080/v1"), Some(("127.0.0.1".into(), 8080)));
        assert_eq!(
            host_port("https://generativelanguage.googleapis.com"),
            Some(("generativelanguage.googleapis.com".into(), 443))
        );
        assert_eq!(host_port("http://[::1]:9/x"), Some(("::1".into(), 9)));
        assert_eq!(host_port("ftp://x"), None);
        assert_eq!(host_port("nonsense"), None);
    }
}
