//! The command line, as clap types. Everything a user can type is declared here.

use clap::{Args, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

/// Cadre: AI software-engineering agents that plan, write and test a change, and propose it for review.
#[derive(Debug, Parser)]
#[command(name = "cadre", version, about, propagate_version = true)]
pub(crate) struct Cli {
    /// Where Cadre keeps its database and worktrees [default: $XDG_DATA_HOME/cadre or ~/.local/share/cadre].
    #[arg(long, global = true, env = "CADRE_HOME")]
    pub(crate) home: Option<PathBuf>,

    /// Seconds a message taken by a worker stays hidden from others; a worker that dies releases its
    /// message after this long. Heartbeats keep it hidden while a step runs.
    #[arg(long, global = true, default_value_t = 30)]
    pub(crate) visibility_timeout: u64,

    /// Where the repository's tests run: `youki` (a container: own namespaces, no network, cgroup
    /// limits, seccomp; needs root) or `host` (a plain process with no isolation, for machines where
    /// containers cannot run). Cadre never falls back from one to the other by itself.
    #[arg(long, global = true, value_enum, env = "CADRE_SANDBOX", default_value_t = SandboxKind::Youki)]
    pub(crate) sandbox: SandboxKind,

    /// Log format on stderr.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Pretty)]
    pub(crate) log_format: LogFormat,

    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum SandboxKind {
    Youki,
    Host,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub(crate) enum LogFormat {
    Pretty,
    Json,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Start a task on a repository and follow it until it awaits review (or fails).
    Task(TaskArgs),
    /// List tasks, or show one task's state and log.
    Status {
        /// A task id or unique prefix; all tasks when absent.
        task: Option<String>,
        /// Ask a Cadre deployment's task API at this URL (token from CADRE_API_TOKEN).
        #[arg(long, value_name = "URL")]
        remote: Option<String>,
        #[arg(long = "api-token", env = "CADRE_API_TOKEN", hide = true, hide_env_values = true, value_parser = parse_api_token)]
        api_token: Option<cadre_api::ApiToken>,
    },
    /// Show a task's plan, proposed diff and test report.
    Show {
        /// A task id or unique prefix.
        task: String,
        /// Show only this part.
        #[arg(long, value_enum)]
        only: Option<ShowPart>,
        /// Show this candidate of a best-of-N task (1 to N) instead of the proposed change.
        #[arg(long)]
        candidate: Option<u32>,
    },
    /// Apply a task's proposed change to its repository's working tree (your approval).
    Apply {
        /// A task id or unique prefix.
        task: String,
    },
    /// Reject a task's proposed change.
    Reject {
        /// A task id or unique prefix.
        task: String,
        /// Why, kept in the task's log.
        #[arg(long)]
        reason: Option<String>,
    },
    /// Cancel a task that has not finished.
    Cancel {
        /// A task id or unique prefix.
        task: String,
    },
    /// Re-publish the message a task is waiting for (after a lost message or a fixed dead letter), or
    /// continue a task that stopped at its budget with a higher one.
    Resume {
        /// A task id or unique prefix.
        task: String,
        /// Raise the task's budget to this many USD (needed for a task that stopped at its budget).
        #[arg(long)]
        budget_usd: Option<f64>,
    },
    /// Model tokens and cost, per task, step, day or model.
    Usage {
        /// Only this task (an id or unique prefix).
        #[arg(long)]
        task: Option<String>,
        /// How to group the totals.
        #[arg(long, value_enum, default_value_t = UsageBy::Task)]
        by: UsageBy,
    },
    /// Index a repository for retrieval: only files changed since the last run are parsed again.
    Index(IndexArgs),
    /// Search an indexed repository: ranked `file:line  score  symbol`.
    Search(SearchArgs),
    /// Check that this machine and configuration can run tasks: the data directory, the model (one
    /// free countTokens call), the container sandbox, git, the repository's index and cloud
    /// credentials. Prints a fix for each problem; exits 1 when any check failed.
    Doctor(DoctorArgs),
    /// Measure solve rate, cost and time on a suite of tasks (SWE-bench JSONL or a directory of local
    /// tasks), or compare two runs with `cadre eval compare RUN_A RUN_B`.
    Eval(EvalArgs),
    /// Serve the Language Server Protocol on stdio: Cadre's agents as code actions in your editor,
    /// with the tasks run by a worker in this process (see lsp/README.md).
    Lsp {
        #[command(flatten)]
        model: ModelArgs,
        /// Messages the in-process worker handles at once.
        #[arg(long, default_value_t = 2)]
        concurrency: usize,
        /// Accepted because editors pass it; stdio is the only transport.
        #[arg(long, hide = true)]
        stdio: bool,
        /// Run tasks on a Cadre deployment's task API at this URL (`cadre serve-api`) instead of a
        /// worker in this process; the token comes from CADRE_API_TOKEN.
        #[arg(long, value_name = "URL")]
        remote: Option<String>,
        /// The team's API token for --remote (or the editor's `remote` setting).
        #[arg(long = "api-token", env = "CADRE_API_TOKEN", hide = true, hide_env_values = true, value_parser = parse_api_token)]
        api_token: Option<cadre_api::ApiToken>,
    },
    /// Serve the authenticated task API (HTTP + JSON) over this home's store and queue, or over
    /// Firestore and Pub/Sub on Cloud Run, for `cadre lsp --remote` (see functions/api).
    ServeApi(Box<crate::api::ServeApiArgs>),
    /// Serve the Agent Client Protocol on stdio: Cadre as an agent in Zed, JetBrains IDEs and other
    /// ACP editors, with the tasks run by a worker in this process (see acp/README.md).
    Acp {
        #[command(flatten)]
        model: ModelArgs,
        /// Messages the in-process worker handles at once.
        #[arg(long, default_value_t = 2)]
        concurrency: usize,
    },
    /// Serve one step as a Cloud Run service: take Pub/Sub push requests over HTTP and run them
    /// (see infra/gcp and terraform/).
    ServePush(Box<crate::gcp::ServePushArgs>),
    /// Run a worker that takes messages off the queue until stopped (Ctrl-C), or until idle.
    ServeWorker {
        #[command(flatten)]
        model: ModelArgs,
        /// Exit once the queue holds no ready or pending message.
        #[arg(long)]
        until_idle: bool,
        /// Messages handled at once.
        #[arg(long, default_value_t = 4)]
        concurrency: usize,
        /// The message bus: the embedded queue in the Cadre home when absent, or `sqs://QUEUE_URL`
        /// for an Amazon SQS queue that has a redrive policy (see infra/aws).
        #[arg(long, env = "CADRE_BUS")]
        bus: Option<String>,
        /// With an SQS bus, where other steps' messages go: STEP=QUEUE_URL, comma-separated.
        #[arg(long = "sqs-route", env = "CADRE_SQS_ROUTES", value_delimiter = ',')]
        sqs_routes: Vec<String>,
        /// Where task state lives: `sqlite` (the store in the Cadre home, the default), or
        /// `dynamodb://TABLE` (or `dynamodb://http://HOST:PORT/TABLE` for a local server), shared by
        /// every worker and Lambda function of an AWS deployment (see infra/aws).
        #[arg(long, env = "CADRE_STATE")]
        state: Option<String>,
    },
    /// Push a task's change to its branch and open (or update) its pull / merge request on GitHub or
    /// GitLab (token from CADRE_FORGE_TOKEN, GITHUB_TOKEN or GITLAB_TOKEN).
    Pr(Box<crate::forge::PrArgs>),
    /// Receive GitHub / GitLab webhooks: a labelled issue or a `/cadre …` comment becomes a queued task
    /// (secrets from CADRE_GITHUB_WEBHOOK_SECRET / CADRE_GITLAB_WEBHOOK_TOKEN).
    ServeWebhooks(Box<crate::forge::ServeWebhooksArgs>),
    /// Serve AWS Lambda invocations: SQS event batches of the function's queue, each record run by
    /// the engine, failed records reported back (the function's bootstrap; see terraform/aws).
    Lambda(Box<crate::aws::LambdaArgs>),
}

/// Wraps the token at once, so `Debug` of the command line never shows it.
fn parse_api_token(text: &str) -> Result<cadre_api::ApiToken, String> {
    Ok(cadre_api::ApiToken::new(text.trim()))
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub(crate) enum UsageBy {
    Task,
    Step,
    Day,
    Model,
    Team,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum HarnessArg {
    EditBlocks,
    Tools,
}

impl From<HarnessArg> for cadre_domain::Harness {
    fn from(arg: HarnessArg) -> Self {
        match arg {
            HarnessArg::EditBlocks => cadre_domain::Harness::EditBlocks,
            HarnessArg::Tools => cadre_domain::Harness::Tools,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum ScanArg {
    Off,
    Secrets,
    Full,
}

impl From<ScanArg> for cadre_domain::ScanLevel {
    fn from(arg: ScanArg) -> Self {
        match arg {
            ScanArg::Off => cadre_domain::ScanLevel::Off,
            ScanArg::Secrets => cadre_domain::ScanLevel::Secrets,
            ScanArg::Full => cadre_domain::ScanLevel::Full,
        }
    }
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub(crate) enum ShowPart {
    Plan,
    Diff,
    Report,
}

#[derive(Debug, Args)]
pub(crate) struct TaskArgs {
    /// The repository to work on.
    #[arg(long, default_value = ".")]
    pub(crate) repo: PathBuf,
    /// What you want done, in your words.
    pub(crate) goal: String,
    /// The command that runs the repository's tests (detected from the repository when absent).
    #[arg(long)]
    pub(crate) test_cmd: Option<String>,
    /// Generate→test rounds before giving up.
    #[arg(long, default_value_t = 3)]
    pub(crate) max_rounds: u32,
    /// Wall-clock limit for one test run, in seconds.
    #[arg(long, default_value_t = 600)]
    pub(crate) test_timeout: u64,
    /// How the change is generated: `edit-blocks` (one answer of search/replace blocks per round) or
    /// `tools` (the model searches, reads, edits and runs the tests through tools, turn by turn).
    #[arg(long, value_enum, default_value_t = HarnessArg::EditBlocks)]
    pub(crate) harness: HarnessArg,
    /// Scanners run on each round's change after its tests: `off`, `secrets` (the patch's added lines)
    /// or `full` (secrets, and the linters the repository uses: clippy, ruff, eslint, in the sandbox).
    #[arg(long, value_enum, default_value_t = ScanArg::Secrets)]
    pub(crate) scan: ScanArg,
    /// The team the task's model calls are charged to (and whose daily budget they count against).
    #[arg(long, env = "CADRE_TEAM")]
    pub(crate) team: Option<String>,
    /// Best of N: independent candidates that each generate and test a change after one plan (1 to 5);
    /// the one whose tests pass with the smallest change is proposed, the others stay visible
    /// (`cadre show TASK --candidate K`). They share the task's budget.
    #[arg(long, default_value_t = 1)]
    pub(crate) candidates: u32,
    /// How much the model thinks per step, as STEP=LEVEL (steps: plan, generate, turn; levels:
    /// minimal, low, medium, high), comma-separated or repeated [default: plan=high, generate=medium,
    /// turn=low].
    #[arg(long, value_delimiter = ',', value_name = "STEP=LEVEL")]
    pub(crate) thinking: Vec<String>,
    /// Start even with uncommitted changes (Cadre works from HEAD and will not see them).
    #[arg(long)]
    pub(crate) allow_dirty: bool,
    /// Queue the task and return at once; a `cadre serve-worker` runs it.
    #[arg(long)]
    pub(crate) detach: bool,
    /// Create the task on a Cadre deployment's task API at this URL and follow it there (token from
    /// CADRE_API_TOKEN); the repository must be a path the deployment can read.
    #[arg(long, value_name = "URL")]
    pub(crate) remote: Option<String>,
    #[arg(long = "api-token", env = "CADRE_API_TOKEN", hide = true, hide_env_values = true, value_parser = parse_api_token)]
    pub(crate) api_token: Option<cadre_api::ApiToken>,
    #[command(flatten)]
    pub(crate) model: ModelArgs,
}

#[derive(Debug, Args, Clone)]
pub(crate) struct ModelArgs {
    /// The model: `gemini[:MODEL_ID]` (Gemini API, GEMINI_API_KEY), `vertex[:MODEL_ID]` (Gemini on Vertex
    /// AI: GOOGLE_CLOUD_PROJECT, GOOGLE_CLOUD_LOCATION, Application Default Credentials),
    /// `openai:MODEL@BASE_URL` (Ollama, vLLM, llama.cpp) or `replay:FILE`.
    #[arg(long, env = "CADRE_MODEL", default_value = "gemini")]
    pub(crate) model: String,
    /// Record every model request and reply to this JSONL file (replay it later with `--model replay:FILE`).
    #[arg(long)]
    pub(crate) record: Option<PathBuf>,
    /// Most a task may spend on model calls, in USD; a call whose worst case would pass it is not made
    /// and the task stops (`budget_exhausted`) until `cadre resume TASK --budget-usd N`.
    #[arg(long, env = "CADRE_TASK_BUDGET_USD", default_value_t = 2.0)]
    pub(crate) budget_usd: f64,
    /// Most one team may spend on model calls per UTC day, in USD, over the tasks naming it (`--team`).
    #[arg(long, env = "CADRE_TEAM_DAILY_BUDGET_USD")]
    pub(crate) team_daily_budget_usd: Option<f64>,
    /// Client-side limit on model requests per minute (the provider's quota; none when absent).
    #[arg(long, env = "CADRE_MODEL_RPM")]
    pub(crate) rpm: Option<u64>,
    /// Client-side limit on model tokens (input + output) per minute (none when absent).
    #[arg(long, env = "CADRE_MODEL_TPM")]
    pub(crate) tpm: Option<u64>,
    /// A JSON price table replacing the built-in one (`infra/model/prices.json` shows the format).
    #[arg(long, env = "CADRE_PRICES")]
    pub(crate) prices: Option<PathBuf>,
    /// What a model missing from the price table is charged, as INPUT:OUTPUT USD per million tokens
    /// (cached input at a tenth of input), so budgets still hold; such a task is never refused.
    #[arg(long, env = "CADRE_DEFAULT_PRICE", default_value = "2:12", value_name = "INPUT:OUTPUT")]
    pub(crate) default_price: String,
}

#[derive(Debug, Args)]
pub(crate) struct DoctorArgs {
    #[command(flatten)]
    pub(crate) model: ModelArgs,
    /// The repository whose index is checked.
    #[arg(long, default_value = ".")]
    pub(crate) repo: PathBuf,
    /// Do not call the model (the key is then not checked).
    #[arg(long)]
    pub(crate) offline: bool,
}

#[derive(Debug, Args)]
pub(crate) struct IndexArgs {
    /// The repository (or any directory) to index.
    #[arg(default_value = ".")]
    pub(crate) path: PathBuf,
    /// Re-parse every file, ignoring what is indexed already.
    #[arg(long, conflicts_with = "only")]
    pub(crate) full: bool,
    /// Re-index only this file (relative to PATH), e.g. one just saved; repeat for more.
    #[arg(long, value_name = "FILE")]
    pub(crate) only: Vec<String>,
}

#[derive(Debug, Args)]
pub(crate) struct SearchArgs {
    /// The indexed repository.
    pub(crate) path: PathBuf,
    /// Words, identifiers or a question.
    pub(crate) query: String,
    /// Most results shown.
    #[arg(long, short = 'n', default_value_t = 10)]
    pub(crate) limit: usize,
    /// Only paths starting with this (relative to PATH).
    #[arg(long)]
    pub(crate) prefix: Option<String>,
    /// Only this language (rust, python, javascript, typescript, go, java, c, cpp, text); repeat for more.
    #[arg(long = "lang")]
    pub(crate) languages: Vec<String>,
    /// Print each result's text under it.
    #[arg(long)]
    pub(crate) text: bool,
}

/// `cadre eval`: run a suite, or compare two runs.
#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub(crate) struct EvalArgs {
    #[command(subcommand)]
    pub(crate) command: Option<EvalCommand>,
    /// The suite: a SWE-bench-format JSONL file, or a directory with one sub-directory per task
    /// (goal.txt, check, repo/ or repo.bundle, optional hidden/ and test_cmd).
    #[arg(required = true)]
    pub(crate) suite: Option<PathBuf>,
    /// The run's directory (results.jsonl, summary.json, report.html, the tasks' Cadre home); the
    /// same command with the same directory resumes an interrupted run
    /// [default: $CADRE_HOME/evals/SUITE-MODEL-HARNESS].
    #[arg(long)]
    pub(crate) out: Option<PathBuf>,
    /// Tasks run at once.
    #[arg(long, default_value_t = 2)]
    pub(crate) jobs: usize,
    /// A directory of git repositories named `owner__name`, for SWE-bench instances; repositories
    /// not found there are cloned from GitHub.
    #[arg(long)]
    pub(crate) mirror: Option<PathBuf>,
    /// The test command of SWE-bench instances without a `test_cmd` field (the FAIL_TO_PASS and
    /// PASS_TO_PASS test names are appended, or put in place of `{tests}`).
    #[arg(long)]
    pub(crate) test_cmd: Option<String>,
    /// Run only this task (an instance id or task directory name); repeat for more.
    #[arg(long = "only", value_name = "TASK")]
    pub(crate) only: Vec<String>,
    /// Generate→test rounds per task before it gives up.
    #[arg(long, default_value_t = 3)]
    pub(crate) max_rounds: u32,
    /// Wall-clock limit for one test run and for the check, in seconds.
    #[arg(long, default_value_t = 600)]
    pub(crate) test_timeout: u64,
    /// Wall-clock limit for a whole task, in seconds; a task still running then is cancelled and
    /// counted as `timeout`.
    #[arg(long, default_value_t = 1800)]
    pub(crate) task_timeout: u64,
    /// How changes are generated: `edit-blocks` or `tools` (see `cadre task --help`).
    #[arg(long, value_enum, default_value_t = HarnessArg::EditBlocks)]
    pub(crate) harness: HarnessArg,
    #[command(flatten)]
    pub(crate) model: ModelArgs,
}

#[derive(Debug, Subcommand)]
pub(crate) enum EvalCommand {
    /// Per-task differences between two runs, and the change in solve rate and cost.
    Compare {
        /// The first run: its directory or its results.jsonl.
        run_a: PathBuf,
        /// The second run: its directory or its results.jsonl.
        run_b: PathBuf,
    },
}
