//! `openkvs <service> <operation> …`: AWS-CLI-compatible commands for `kinesisvideo`,
//! `kinesis-video-archived-media` and `kinesis-video-media`, generated from the embedded botocore models
//! ([`model`]).
//!
//! Flow: global options ([`Globals`]) → operation arguments ([`params`]) → botocore's validation and
//! serialisation → SigV4 (`sigv4::sign`, service `kinesisvideo`) → HTTP → the output shape's parse → `--query`
//! ([`jmespath`]) → a formatter ([`output`]). Data-plane commands without an endpoint first ask the control
//! plane's GetDataEndpoint (cached for the process), which the AWS CLI leaves to the user.
//!
//! Operations with a streaming output (GetMedia, GetMediaForFragmentList, GetClip) write the response body to
//! their `outfile` argument as it arrives ([`streaming`]) and print the other output members (the
//! `Content-Type` header) as the output document once the body has ended, as the AWS CLI does.
//!
//! Exit status as AWS CLI v2 documents it: 0 success, 252 command line / parameter errors, 253 configuration,
//! 254 service errors, 255 anything else (e.g. the endpoint cannot be reached).

pub mod config;
pub mod jmespath;
mod model;
mod output;
mod params;
pub mod shorthand;
mod streaming;
mod timefmt;
pub mod value;
mod yaml;

use model::{Operation, Service};
use params::OpCall;
use std::collections::HashMap;
use std::io::{IsTerminal, Write};
use std::process::ExitCode;
use std::time::{Duration, SystemTime};
use value::{parse_json, to_json_compact, Value};

/// CLI service names this client knows.
pub const SERVICE_NAMES: &[&str] = &[
    "kinesisvideo",
    "kinesis-video-archived-media",
    "kinesis-video-media",
];

const EXIT_USAGE: u8 = 252;
const EXIT_CONFIG: u8 = 253;
const EXIT_SERVICE: u8 = 254;
const EXIT_OTHER: u8 = 255;

const USAGE: &str = "usage: openkvs [options] <command> <subcommand> [<subcommand> ...] [parameters]\n\
To see help text, you can run:\n\n  openkvs help\n  openkvs <command> help\n  openkvs <command> <subcommand> help\n";

/// What can go wrong, by exit status class.
#[derive(Debug)]
pub(crate) enum CliError {
    /// argparse-style error: usage block + `openkvs: error: …` (252).
    Usage(String),
    /// Options the operation doesn't have (252).
    UnknownOptions(String),
    /// A value that can't be read (`Error parsing parameter …`) (252).
    Param(String),
    /// botocore's `Parameter validation failed:` report (252).
    Validation(Vec<String>),
    /// Profile, region or credentials (253).
    Config(String),
    /// An error response (254).
    Service {
        code: String,
        operation: String,
        message: String,
        /// `Some(n)`: botocore adds " (reached max retries: n)".
        retries: Option<u32>,
    },
    /// Anything else (255).
    Other(String),
    /// SIGINT or SIGTERM while a streaming body was being written: exit 128 + the signal number, as the
    /// AWS CLI does for Ctrl-C (130).
    Interrupted(i32),
}

impl CliError {
    fn exit_code(&self) -> u8 {
        match self {
            CliError::Usage(_)
            | CliError::UnknownOptions(_)
            | CliError::Param(_)
            | CliError::Validation(_) => EXIT_USAGE,
            CliError::Config(_) => EXIT_CONFIG,
            CliError::Service { .. } => EXIT_SERVICE,
            CliError::Other(_) => EXIT_OTHER,
            CliError::Interrupted(signal) => u8::try_from(128 + signal).unwrap_or(EXIT_OTHER),
        }
    }

    /// The text on standard error, as the AWS CLI prints it.
    fn render(&self) -> String {
        match self {
            CliError::Usage(m) => format!("{USAGE}openkvs: error: {m}\n"),
            CliError::UnknownOptions(m) => format!("{USAGE}\nUnknown options: {m}\n"),
            CliError::Param(m) => format!("\n{m}\n"),
            CliError::Validation(lines) => {
                format!("\nParameter validation failed:\n{}\n", lines.join("\n"))
            }
            CliError::Config(m) => format!("\n{m}\n"),
            CliError::Service {
                code,
                operation,
                message,
                retries,
            } => {
                let retry = match retries {
                    Some(n) => format!(" (reached max retries: {n})"),
                    None => String::new(),
                };
                format!("\nAn error occurred ({code}) when calling the {operation} operation{retry}: {message}\n")
            }
            CliError::Other(m) => format!("\n{m}\n"),
            CliError::Interrupted(_) => String::new(),
        }
    }
}

/// Global options (awscli `clidriver` main parser plus v2's additions).
#[derive(Debug, Default)]
struct Globals {
    debug: bool,
    endpoint_url: Option<String>,
    no_verify_ssl: bool,
    no_paginate: bool,
    output: Option<String>,
    query: Option<String>,
    profile: Option<String>,
    region: Option<String>,
    version: bool,
    color: Option<String>,
    no_sign_request: bool,
    ca_bundle: Option<String>,
    cli_read_timeout: Option<u64>,
    cli_connect_timeout: Option<u64>,
    cli_binary_format: Option<String>,
    cli_auto_prompt: Option<bool>,
}

const VALUE_OPTIONS: &[&str] = &[
    "--endpoint-url",
    "--output",
    "--query",
    "--profile",
    "--region",
    "--color",
    "--ca-bundle",
    "--cli-read-timeout",
    "--cli-connect-timeout",
    "--cli-binary-format",
];
const FLAG_OPTIONS: &[&str] = &[
    "--debug",
    "--no-verify-ssl",
    "--no-paginate",
    "--version",
    "--no-sign-request",
    "--no-cli-pager",
    "--cli-auto-prompt",
    "--no-cli-auto-prompt",
];

fn choice(name: &str, value: &str, choices: &[&str]) -> Result<(), CliError> {
    if choices.contains(&value) {
        Ok(())
    } else {
        Err(CliError::Usage(format!(
            "argument {name}: Invalid choice '{value}', valid choices are: {}",
            choices.join(", ")
        )))
    }
}

/// The first word of `argv` that is neither an option nor the value of a global option (the service, for the
/// client commands; `serve` / `put-media` otherwise).
pub fn command_word(argv: &[String]) -> Option<&str> {
    let mut i = 0;
    while i < argv.len() {
        let token = argv[i].as_str();
        if !token.starts_with("--") {
            return Some(token);
        }
        i += if VALUE_OPTIONS.contains(&token) { 2 } else { 1 };
    }
    None
}

/// Takes the global options out of `argv` (they may appear anywhere, as with the AWS CLI).
fn parse_globals(argv: &[String]) -> Result<(Globals, Vec<String>), CliError> {
    let mut g = Globals::default();
    let mut rest = Vec::new();
    let mut i = 0;
    while i < argv.len() {
        let token = &argv[i];
        i += 1;
        let (name, inline) = match token.split_once('=') {
            Some((n, v)) if n.starts_with("--") => (n.to_owned(), Some(v.to_owned())),
            _ => (token.clone(), None),
        };
        if FLAG_OPTIONS.contains(&name.as_str()) && inline.is_none() {
            match name.as_str() {
                "--debug" => g.debug = true,
                "--no-verify-ssl" => g.no_verify_ssl = true,
                "--no-paginate" => g.no_paginate = true,
                "--version" => g.version = true,
                "--no-sign-request" => g.no_sign_request = true,
                "--cli-auto-prompt" => g.cli_auto_prompt = Some(true),
                "--no-cli-auto-prompt" => g.cli_auto_prompt = Some(false),
                _ => {} // --no-cli-pager: openkvs never pages.
            }
            continue;
        }
        if !VALUE_OPTIONS.contains(&name.as_str()) {
            rest.push(token.clone());
            continue;
        }
        let value = match inline {
            Some(v) => v,
            None if i < argv.len() && (!argv[i].starts_with("--")) => {
                i += 1;
                argv[i - 1].clone()
            }
            None => {
                return Err(CliError::Usage(format!(
                    "argument {name}: expected one argument"
                )))
            }
        };
        let int = |v: &str| {
            v.parse::<u64>()
                .map_err(|_| CliError::Usage(format!("argument {name}: invalid int value: '{v}'")))
        };
        match name.as_str() {
            "--endpoint-url" => g.endpoint_url = Some(value),
            "--output" => {
                choice(
                    &name,
                    &value,
                    &["json", "text", "table", "yaml", "yaml-stream"],
                )?;
                g.output = Some(value);
            }
            "--query" => g.query = Some(value),
            "--profile" => g.profile = Some(value),
            "--region" => g.region = Some(value),
            "--color" => {
                choice(&name, &value, &["on", "off", "auto"])?;
                g.color = Some(value);
            }
            "--ca-bundle" => g.ca_bundle = Some(value),
            "--cli-read-timeout" => g.cli_read_timeout = Some(int(&value)?),
            "--cli-connect-timeout" => g.cli_connect_timeout = Some(int(&value)?),
            "--cli-binary-format" => {
                choice(&name, &value, &["base64", "raw-in-base64-out"])?;
                g.cli_binary_format = Some(value);
            }
            _ => {}
        }
    }
    Ok((g, rest))
}

/// Entry point: `argv` without the program name. Prints, returns the exit status.
pub async fn run(argv: Vec<String>) -> ExitCode {
    let debug = argv.iter().any(|a| a == "--debug");
    match run_inner(argv).await {
        Ok(out) => {
            let mut stdout = std::io::stdout().lock();
            let _ = stdout.write_all(out.as_bytes());
            let _ = stdout.flush();
            ExitCode::SUCCESS
        }
        Err(e) => {
            if debug {
                eprintln!(
                    "{} - openkvs.client - DEBUG - exiting with {:?}",
                    debug_time(),
                    e.exit_code()
                );
            }
            if matches!(e, CliError::Interrupted(streaming::SIGINT)) {
                // awscli's KeyboardInterrupt handler ends the line the terminal's ^C left open.
                let _ = std::io::stdout().write_all(b"\n");
            }
            let mut stderr = std::io::stderr().lock();
            let _ = stderr.write_all(e.render().as_bytes());
            ExitCode::from(e.exit_code())
        }
    }
}

fn debug_time() -> String {
    timefmt::asctime(time::OffsetDateTime::now_utc())
}

fn debug_log(enabled: bool, logger: &str, message: &str) {
    if enabled {
        eprintln!(
            "{} - MainThread - {logger} - DEBUG - {message}",
            debug_time()
        );
    }
}

fn env_var(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

async fn run_inner(argv: Vec<String>) -> Result<String, CliError> {
    let (globals, rest) = parse_globals(&argv)?;
    if globals.version {
        return Ok(format!(
            "openkvs/{} {}/{}\n",
            env!("CARGO_PKG_VERSION"),
            std::env::consts::OS,
            std::env::consts::ARCH
        ));
    }
    let Some(service_name) = rest.first() else {
        return Err(CliError::Usage(
            "the following arguments are required: command".to_owned(),
        ));
    };
    let service = model::load(service_name).ok_or_else(|| {
        CliError::Usage(format!(
            "argument command: Invalid choice, valid choices are:\n\n{}",
            SERVICE_NAMES.join(" | ")
        ))
    })?;
    let Some(op_name) = rest.get(1) else {
        return Err(CliError::Usage(
            "the following arguments are required: operation".to_owned(),
        ));
    };
    if op_name == "help" {
        return Ok(service_help(&service));
    }
    let op = service.operation(op_name).cloned().ok_or_else(|| {
        let names: Vec<&str> = service
            .operations
            .iter()
            .map(|o| o.cli_name.as_str())
            .collect();
        CliError::Usage(format!(
            "argument operation: Invalid choice, valid choices are:\n\n{}",
            names.join(" | ")
        ))
    })?;
    let op_args = &rest[2..];
    if op_args.first().map(String::as_str) == Some("help") {
        return Ok(operation_help(&service, &op));
    }

    // Query is compiled up front: a bad expression is a command-line error.
    let query = match &globals.query {
        Some(q) => Some(jmespath::compile(q).map_err(|e| {
            CliError::Usage(format!("argument --query: Bad value for --query {q}: {e}"))
        })?),
        None => None,
    };

    let env = env_var;
    let sources = config::Sources {
        env: &env,
        credentials_file: config::credentials_path(&env)
            .and_then(|p| std::fs::read_to_string(p).ok()),
        config_file: config::config_path(&env).and_then(|p| std::fs::read_to_string(p).ok()),
    };
    let resolved = sources
        .profile(globals.profile.as_deref())
        .map_err(|e| CliError::Config(e.0))?;
    let setting = |key: &str| sources.config_value(&resolved.profile, key);

    let auto_prompt = globals.cli_auto_prompt.unwrap_or_else(|| {
        let configured = env_var("AWS_CLI_AUTO_PROMPT").or_else(|| setting("cli_auto_prompt"));
        matches!(configured.as_deref(), Some("on" | "on-partial"))
    });
    let mut argv_op: Vec<String> = op_args.to_vec();
    if auto_prompt {
        argv_op = prompt_for_parameters(&service, &op, argv_op)?;
    }
    let call = params::parse_args(&service, &op, &argv_op)?;
    if let Some(kind) = &call.skeleton {
        if kind == "output" {
            validate_and_serialize(&service, &op, &call.params)?;
        }
        return Ok(params::render_skeleton(&service, &op, kind));
    }
    let body = validate_and_serialize(&service, &op, &call.params)?;

    let output_format = globals
        .output
        .clone()
        .or_else(|| env_var("AWS_DEFAULT_OUTPUT"))
        .or_else(|| setting("output"))
        .unwrap_or_else(|| "json".to_owned());
    if !["json", "text", "table", "yaml", "yaml-stream"].contains(&output_format.as_str()) {
        return Err(CliError::Config(format!(
            "Unknown output type: {output_format}"
        )));
    }
    let timestamp_format = setting("cli_timestamp_format").unwrap_or_else(|| "none".to_owned());

    let region = sources
        .region(globals.region.as_deref(), &resolved.profile)
        .ok_or_else(|| CliError::Config("You must specify a region. You can also configure your region by running \"aws configure\".".to_owned()))?;
    let credentials = if globals.no_sign_request {
        None
    } else {
        let (c, from) = sources.credentials(&resolved).ok_or_else(|| {
            CliError::Config("Unable to locate credentials. You can configure credentials by running \"aws configure\".".to_owned())
        })?;
        debug_log(
            globals.debug,
            "botocore.credentials",
            &format!("Found credentials in {from}."),
        );
        Some(c)
    };
    let endpoint_url = globals
        .endpoint_url
        .clone()
        .or_else(|| env_var("AWS_ENDPOINT_URL_KINESIS_VIDEO").filter(|v| !v.is_empty()))
        .or_else(|| env_var("AWS_ENDPOINT_URL").filter(|v| !v.is_empty()))
        .or_else(|| setting("endpoint_url"));
    let ca_bundle = globals
        .ca_bundle
        .clone()
        .or_else(|| env_var("AWS_CA_BUNDLE").filter(|v| !v.is_empty()))
        .or_else(|| setting("ca_bundle"));
    let read_timeout = globals
        .cli_read_timeout
        .or_else(|| setting("cli_read_timeout").and_then(|v| v.parse().ok()))
        .unwrap_or(60);
    let connect_timeout = globals
        .cli_connect_timeout
        .or_else(|| setting("cli_connect_timeout").and_then(|v| v.parse().ok()))
        .unwrap_or(60);
    // AWS CLI v2 defaults to the standard retry mode (3 attempts); `legacy` is v1's (5 attempts).
    let retry_mode = env_var("AWS_RETRY_MODE")
        .filter(|v| !v.is_empty())
        .or_else(|| setting("retry_mode"));
    let standard_retries = retry_mode.as_deref() != Some("legacy");
    let max_attempts = env_var("AWS_MAX_ATTEMPTS")
        .or_else(|| setting("max_attempts"))
        .and_then(|v| v.parse::<u32>().ok())
        .unwrap_or(if standard_retries { 3 } else { 5 })
        .max(1);

    let mut builder = reqwest::Client::builder().danger_accept_invalid_certs(globals.no_verify_ssl);
    if read_timeout > 0 {
        builder = builder.read_timeout(Duration::from_secs(read_timeout));
    }
    if connect_timeout > 0 {
        builder = builder.connect_timeout(Duration::from_secs(connect_timeout));
    }
    if let Some(path) = &ca_bundle {
        let pem = std::fs::read(path)
            .map_err(|e| CliError::Other(format!("Unable to read CA bundle {path}: {e}")))?;
        let certs = reqwest::Certificate::from_pem_bundle(&pem)
            .map_err(|e| CliError::Other(format!("Invalid CA bundle {path}: {e}")))?;
        builder = builder.tls_built_in_root_certs(false);
        for cert in certs {
            builder = builder.add_root_certificate(cert);
        }
    }
    let http = builder
        .build()
        .map_err(|e| CliError::Other(format!("cannot build the HTTP client: {e}")))?;
    let mut client = Client {
        http,
        region,
        signing_name: service.endpoint_prefix.clone(),
        credentials,
        endpoint_url,
        control_plane_url: env_var("OPENKVS_ENDPOINT_URL").filter(|v| !v.is_empty()),
        debug: globals.debug,
        max_attempts,
        standard_retries,
        data_endpoints: HashMap::new(),
    };

    let (pages, parsed_pages) = match (&op.streaming_output, &call.outfile) {
        (Some(payload), Some(outfile)) => {
            let work = client.download(&service, &op, &body, payload, outfile);
            let document = streaming::unless_interrupted(work, streaming::interruption()).await?;
            let single = Pages {
                pages: Vec::new(),
                paginated: false,
                resume_token: None,
            };
            (single, vec![document])
        }
        _ => {
            let pages = client
                .call_paginated(&service, &op, body, &call, globals.no_paginate)
                .await?;
            let parsed_pages: Vec<Value> = pages
                .pages
                .iter()
                .map(|p| parse_output(&service, &op.output, p, &timestamp_format))
                .collect();
            (pages, parsed_pages)
        }
    };
    let color = match globals.color.as_deref() {
        Some("on") => true,
        Some("off") => false,
        _ => std::io::stdout().is_terminal(),
    };
    let search = |v: &Value| -> Result<Value, CliError> {
        match &query {
            Some(q) => jmespath::search(q, v).map_err(CliError::Other),
            None => Ok(v.clone()),
        }
    };
    let mut out = String::new();
    match output_format.as_str() {
        "text" => {
            let pagination = op.pagination.as_ref().filter(|_| pages.paginated);
            match pagination {
                Some(p) => {
                    for (i, page) in parsed_pages.iter().enumerate() {
                        let mut current = if i == 0 {
                            non_aggregate(page, p)
                        } else {
                            Value::Map(Vec::new())
                        };
                        current.set(
                            &p.result_key,
                            page.get(&p.result_key).cloned().unwrap_or(Value::Null),
                        );
                        out.push_str(&output::text(&search(&current)?));
                    }
                    if let Some(token) = &pages.resume_token {
                        let nt = Value::Map(vec![(
                            "NextToken".to_owned(),
                            Value::Map(vec![("NextToken".to_owned(), Value::Str(token.clone()))]),
                        )]);
                        out.push_str(&output::text(&search(&nt)?));
                    }
                }
                None => {
                    for page in &parsed_pages {
                        out.push_str(&output::text(&search(page)?));
                    }
                }
            }
        }
        "yaml-stream" => {
            for page in &parsed_pages {
                out.push_str(&output::yaml_stream_page(&search(page)?));
            }
        }
        format => {
            let full = full_result(
                &op,
                &parsed_pages,
                pages.paginated,
                pages.resume_token.as_deref(),
            );
            let result = search(&full)?;
            out = match format {
                "table" => output::table(&op.name, &result, color, terminal_width()),
                "yaml" => output::yaml(&result),
                _ => output::json(&result),
            };
        }
    }
    Ok(out)
}

/// The first page's keys other than the result and output-token keys (botocore `non_aggregate_part`).
fn non_aggregate(page: &Value, p: &model::Pagination) -> Value {
    match page {
        Value::Map(pairs) => Value::Map(
            pairs
                .iter()
                .filter(|(k, _)| *k != p.result_key && *k != p.output_token)
                .cloned()
                .collect(),
        ),
        _ => Value::Map(Vec::new()),
    }
}

/// botocore `PageIterator.build_full_result` (or the single response).
fn full_result(
    op: &Operation,
    pages: &[Value],
    paginated: bool,
    resume_token: Option<&str>,
) -> Value {
    let (Some(p), true) = (&op.pagination, paginated) else {
        return pages.first().cloned().unwrap_or(Value::Map(Vec::new()));
    };
    let mut items = Vec::new();
    let mut seen = false;
    for page in pages {
        if let Some(Value::List(l)) = page.get(&p.result_key) {
            items.extend(l.iter().cloned());
            seen = true;
        }
    }
    let mut out = Value::Map(Vec::new());
    if seen {
        out.set(&p.result_key, Value::List(items));
    }
    if let Some(first) = pages.first() {
        if let Value::Map(pairs) = non_aggregate(first, p) {
            for (k, v) in pairs {
                out.set(&k, v);
            }
        }
    }
    if let Some(token) = resume_token {
        out.set("NextToken", Value::Str(token.to_owned()));
    }
    out
}

/// Width of the terminal on standard output, else 80 (awscli `determine_terminal_width`).
fn terminal_width() -> usize {
    if !std::io::stdout().is_terminal() {
        return 80;
    }
    std::env::var("COLUMNS")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(80)
}

fn validate_and_serialize(
    service: &Service,
    op: &Operation,
    params: &Value,
) -> Result<Value, CliError> {
    let errors = params::validate(service, &op.input, params);
    if !errors.is_empty() {
        return Err(CliError::Validation(errors));
    }
    Ok(params::serialize(service, &op.input, params))
}

/// botocore's rest-json response parse: members in model order, nulls dropped, timestamps per
/// `cli_timestamp_format` (`none` keeps the wire value, `iso8601` prints `datetime.isoformat()`).
fn parse_output(
    service: &Service,
    shape_name: &str,
    value: &Value,
    timestamp_format: &str,
) -> Value {
    let shape = service.shape(shape_name);
    match (shape.type_name.as_str(), value) {
        ("structure", Value::Map(_)) => {
            let mut out = Value::Map(Vec::new());
            for (member, member_shape) in &shape.members {
                if let Some(v) = value.get(member) {
                    if *v != Value::Null {
                        out.set(
                            member,
                            parse_output(service, member_shape, v, timestamp_format),
                        );
                    }
                }
            }
            out
        }
        ("list", Value::List(items)) => {
            let member = shape.member.clone().unwrap_or_default();
            Value::List(
                items
                    .iter()
                    .map(|i| parse_output(service, &member, i, timestamp_format))
                    .collect(),
            )
        }
        ("map", Value::Map(pairs)) => {
            let value_shape = shape.value.clone().unwrap_or_default();
            Value::Map(
                pairs
                    .iter()
                    .map(|(k, v)| {
                        (
                            k.clone(),
                            parse_output(service, &value_shape, v, timestamp_format),
                        )
                    })
                    .collect(),
            )
        }
        ("timestamp", v) if timestamp_format == "iso8601" => {
            let epoch = match v {
                Value::Str(s) => timefmt::parse_timestamp(s),
                other => other.as_f64(),
            };
            epoch
                .and_then(timefmt::iso8601)
                .map(Value::Str)
                .unwrap_or_else(|| v.clone())
        }
        _ => value.clone(),
    }
}

/// The responses of one command: one page, or every page of a paginated operation.
struct Pages {
    pages: Vec<Value>,
    paginated: bool,
    resume_token: Option<String>,
}

/// Sends requests: signing, retries, endpoint discovery.
struct Client {
    http: reqwest::Client,
    region: String,
    /// The models' `endpointPrefix` (`kinesisvideo` for all three KVS services, docs/wire.md#sigv4).
    signing_name: String,
    credentials: Option<sigv4::Credentials>,
    /// `--endpoint-url` or its configured equivalents: every request goes there, as with the AWS CLI.
    endpoint_url: Option<String>,
    /// `OPENKVS_ENDPOINT_URL`: a control plane to use *with* data-endpoint discovery (as on AWS).
    control_plane_url: Option<String>,
    debug: bool,
    max_attempts: u32,
    /// `retry_mode = standard` (else legacy).
    standard_retries: bool,
    /// (stream, API name) → data endpoint, for the life of the process.
    data_endpoints: HashMap<(String, String), String>,
}

/// The APIName GetDataEndpoint needs for a data-plane operation.
fn api_name_for(op_name: &str) -> Option<&'static str> {
    Some(match op_name {
        "GetHLSStreamingSessionURL" => "GET_HLS_STREAMING_SESSION_URL",
        "GetDASHStreamingSessionURL" => "GET_DASH_STREAMING_SESSION_URL",
        "ListFragments" => "LIST_FRAGMENTS",
        "GetMediaForFragmentList" => "GET_MEDIA_FOR_FRAGMENT_LIST",
        "GetClip" => "GET_CLIP",
        "GetImages" => "GET_IMAGES",
        "GetMedia" => "GET_MEDIA",
        "PutMedia" => "PUT_MEDIA",
        _ => return None,
    })
}

/// botocore's resume token: base64 of `json.dumps({"NextToken": …[, "boto_truncate_amount": n]})`.
fn encode_resume_token(token: &Value) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(to_json_compact(token))
}

fn decode_starting_token(token: &str) -> Result<(Option<String>, usize), CliError> {
    use base64::Engine as _;
    let invalid = || {
        CliError::Other(format!(
            "Error during pagination: Token '{token}' is invalid"
        ))
    };
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(token)
        .map_err(|_| invalid())?;
    let text = String::from_utf8(bytes).map_err(|_| invalid())?;
    let v = parse_json(&text).map_err(|_| invalid())?;
    let next = v
        .get("NextToken")
        .and_then(Value::as_str)
        .map(str::to_owned);
    let skip = match v.get("boto_truncate_amount") {
        Some(Value::Int(n)) => *n as usize,
        _ => 0,
    };
    Ok((next, skip))
}

impl Client {
    /// The control-plane endpoint: `--endpoint-url` (or its configured equivalents), else
    /// `OPENKVS_ENDPOINT_URL`, else AWS's.
    fn control_endpoint(&self) -> String {
        match self
            .endpoint_url
            .as_ref()
            .or(self.control_plane_url.as_ref())
        {
            Some(url) => url.trim_end_matches('/').to_owned(),
            None => {
                let suffix = if self.region.starts_with("cn-") {
                    "amazonaws.com.cn"
                } else {
                    "amazonaws.com"
                };
                format!("https://kinesisvideo.{}.{suffix}", self.region)
            }
        }
    }

    /// Where an operation goes: data-plane operations without an explicit endpoint ask GetDataEndpoint first.
    async fn endpoint_for(
        &mut self,
        service: &Service,
        op: &Operation,
        body: &Value,
    ) -> Result<String, CliError> {
        if self.endpoint_url.is_some() || service.cli_name == "kinesisvideo" {
            return Ok(self.control_endpoint());
        }
        let Some(api_name) = api_name_for(&op.name) else {
            return Ok(self.control_endpoint());
        };
        let (key, stream) = match (body.get("StreamARN"), body.get("StreamName")) {
            (Some(Value::Str(arn)), _) => ("StreamARN", arn.clone()),
            (_, Some(Value::Str(name))) => ("StreamName", name.clone()),
            _ => ("StreamName", String::new()),
        };
        let cache_key = (stream.clone(), api_name.to_owned());
        if let Some(found) = self.data_endpoints.get(&cache_key) {
            return Ok(found.clone());
        }
        let control = model::load("kinesisvideo")
            .ok_or_else(|| CliError::Other("no kinesisvideo model".into()))?;
        let gde = control
            .operation_by_name("GetDataEndpoint")
            .cloned()
            .ok_or_else(|| CliError::Other("no GetDataEndpoint in the model".into()))?;
        let mut request = Value::Map(Vec::new());
        if !stream.is_empty() {
            request.set(key, Value::Str(stream));
        }
        request.set("APIName", Value::Str(api_name.to_owned()));
        let endpoint = self.control_endpoint();
        debug_log(
            self.debug,
            "openkvs.client",
            &format!(
                "Discovering the data endpoint: GetDataEndpoint {}",
                to_json_compact(&request)
            ),
        );
        let response = self.send(&endpoint, &gde, &request).await?;
        let data_endpoint = response
            .get("DataEndpoint")
            .and_then(Value::as_str)
            .map(|s| s.trim_end_matches('/').to_owned())
            .ok_or_else(|| {
                CliError::Other("GetDataEndpoint returned no DataEndpoint".to_owned())
            })?;
        debug_log(
            self.debug,
            "openkvs.client",
            &format!("Data endpoint for {api_name}: {data_endpoint} (cached)"),
        );
        self.data_endpoints.insert(cache_key, data_endpoint.clone());
        Ok(data_endpoint)
    }

    async fn call_paginated(
        &mut self,
        service: &Service,
        op: &Operation,
        body: Value,
        call: &OpCall,
        no_paginate: bool,
    ) -> Result<Pages, CliError> {
        let endpoint = self.endpoint_for(service, op, &body).await?;
        let pagination = match &op.pagination {
            Some(p) if call.paging.enabled && !no_paginate => p.clone(),
            _ => {
                let page = self.send(&endpoint, op, &body).await?;
                return Ok(Pages {
                    pages: vec![page],
                    paginated: false,
                    resume_token: None,
                });
            }
        };
        let mut kwargs = body;
        if let Some(size) = call.paging.page_size {
            kwargs.set(&pagination.limit_key, Value::Int(size));
        }
        let mut starting_truncation = 0;
        let mut next_token: Option<String> = None;
        if let Some(token) = &call.paging.starting_token {
            let (next, skip) = decode_starting_token(token)?;
            starting_truncation = skip;
            next_token = next;
            if let Some(t) = &next_token {
                kwargs.set(&pagination.input_token, Value::Str(t.clone()));
            }
        }
        let mut pages = Vec::new();
        let mut total_items = 0usize;
        let mut resume_token = None;
        let mut first = true;
        let mut previous: Option<String> = None;
        loop {
            let mut page = self.send(&endpoint, op, &kwargs).await?;
            if first && starting_truncation > 0 {
                if let Some(Value::List(items)) = page.get(&pagination.result_key).cloned() {
                    let kept: Vec<Value> = items.into_iter().skip(starting_truncation).collect();
                    page.set(&pagination.result_key, Value::List(kept));
                }
            } else if !first {
                starting_truncation = 0;
            }
            first = false;
            let count = match page.get(&pagination.result_key) {
                Some(Value::List(items)) => items.len(),
                _ => 0,
            };
            if let Some(max) = call.paging.max_items.map(|m| m.max(0) as usize) {
                if total_items + count > max {
                    let keep = max - total_items;
                    if let Some(Value::List(items)) = page.get(&pagination.result_key).cloned() {
                        page.set(
                            &pagination.result_key,
                            Value::List(items.into_iter().take(keep).collect()),
                        );
                    }
                    let mut token = Value::Map(Vec::new());
                    token.set(
                        "NextToken",
                        next_token.clone().map(Value::Str).unwrap_or(Value::Null),
                    );
                    token.set(
                        "boto_truncate_amount",
                        Value::Int((keep + starting_truncation) as i64),
                    );
                    resume_token = Some(encode_resume_token(&token));
                    pages.push(page);
                    break;
                }
            }
            total_items += count;
            let next = page
                .get(&pagination.output_token)
                .and_then(Value::as_str)
                .map(str::to_owned);
            pages.push(page);
            let Some(next) = next else { break };
            if call
                .paging
                .max_items
                .is_some_and(|m| total_items as i64 == m)
            {
                resume_token = Some(encode_resume_token(&Value::Map(vec![(
                    "NextToken".to_owned(),
                    Value::Str(next),
                )])));
                break;
            }
            if previous.as_deref() == Some(next.as_str()) {
                return Err(CliError::Other(format!(
                    "Error during pagination: The same next token was received twice: {{'{}': '{next}'}}",
                    pagination.input_token
                )));
            }
            kwargs.set(&pagination.input_token, Value::Str(next.clone()));
            next_token = Some(next.clone());
            previous = Some(next);
        }
        Ok(Pages {
            pages,
            paginated: true,
            resume_token,
        })
    }

    /// One operation call with botocore's retry policy: `standard` (AWS CLI v2's default, 3 attempts) or
    /// `legacy` (v1's, 5 attempts); 5xx, throttling and connection errors are retried. The message gets
    /// " (reached max retries: N)" when botocore would say so: in standard mode whenever the last allowed attempt
    /// failed, in legacy mode only when a retryable error used them all.
    async fn send(&self, endpoint: &str, op: &Operation, body: &Value) -> Result<Value, CliError> {
        self.with_retries(|| self.send_once(endpoint, op, body))
            .await
    }

    /// The retry loop of [`Client::send`] around any single attempt (`Err((retryable, error))`).
    async fn with_retries<T, F, Fut>(&self, mut attempt_once: F) -> Result<T, CliError>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T, (bool, CliError)>>,
    {
        let mut attempt = 1;
        loop {
            match attempt_once().await {
                Ok(v) => return Ok(v),
                Err((retryable, mut error)) => {
                    if !retryable || attempt >= self.max_attempts {
                        let exhausted =
                            attempt >= self.max_attempts && (self.standard_retries || retryable);
                        if let CliError::Service { retries, .. } = &mut error {
                            *retries = if exhausted { Some(attempt - 1) } else { None };
                        }
                        return Err(error);
                    }
                    // botocore: rand() * 2^(attempts-1) seconds (capped at 20 s).
                    let jitter = (SystemTime::now()
                        .duration_since(SystemTime::UNIX_EPOCH)
                        .unwrap_or_default()
                        .subsec_nanos()
                        % 1000) as f64
                        / 1000.0;
                    let delay = jitter * f64::from(1u32 << (attempt - 1).min(6));
                    debug_log(
                        self.debug,
                        "botocore.retryhandler",
                        &format!("Retry needed, retrying request after delay of: {delay:.3}"),
                    );
                    tokio::time::sleep(Duration::from_secs_f64(delay.min(20.0))).await;
                    attempt += 1;
                }
            }
        }
    }

    /// One attempt whose JSON response body is parsed.
    async fn send_once(
        &self,
        endpoint: &str,
        op: &Operation,
        body: &Value,
    ) -> Result<Value, (bool, CliError)> {
        let response = self.request_once(endpoint, op, body).await?;
        let text = self.read_text(response).await?;
        if text.trim().is_empty() {
            return Ok(Value::Map(Vec::new()));
        }
        parse_json(&text).map_err(|e| {
            (
                false,
                CliError::Other(format!(
                    "Unable to parse response ({e}), invalid JSON response:\n{text}"
                )),
            )
        })
    }

    /// A whole (JSON or error) response body; a connection lost while reading it is retryable.
    async fn read_text(&self, response: reqwest::Response) -> Result<String, (bool, CliError)> {
        let url = response.url().to_string();
        let text = response
            .text()
            .await
            .map_err(|e| (true, CliError::Other(format!("Connection was closed before we received a valid response from endpoint URL: \"{url}\". ({e})"))))?;
        debug_log(
            self.debug,
            "botocore.parsers",
            &format!("Response body:\n{text}"),
        );
        Ok(text)
    }

    /// One attempt up to a successful status line and headers (the body is left to the caller); an error
    /// status is read and parsed into the service error.
    async fn request_once(
        &self,
        endpoint: &str,
        op: &Operation,
        body: &Value,
    ) -> Result<reqwest::Response, (bool, CliError)> {
        let url = format!("{endpoint}{}", op.request_uri);
        let parsed = reqwest::Url::parse(&url).map_err(|e| {
            (
                false,
                CliError::Other(format!("Invalid endpoint: {endpoint} ({e})")),
            )
        })?;
        let host = match (parsed.host_str(), parsed.port()) {
            (Some(h), Some(p)) => format!("{h}:{p}"),
            (Some(h), None) => h.to_owned(),
            _ => {
                return Err((
                    false,
                    CliError::Other(format!("Invalid endpoint: {endpoint}")),
                ))
            }
        };
        let body_text = to_json_compact(body);
        let mut headers: Vec<(String, String)> = vec![
            ("Content-Type".to_owned(), "application/json".to_owned()),
            (
                "User-Agent".to_owned(),
                format!(
                    "openkvs/{} ({})",
                    env!("CARGO_PKG_VERSION"),
                    std::env::consts::OS
                ),
            ),
        ];
        if let Some(credentials) = &self.credentials {
            headers.extend(sign_request(
                &host,
                parsed.path(),
                &body_text,
                credentials,
                &self.region,
                &self.signing_name,
                SystemTime::now(),
            ));
        }
        debug_log(
            self.debug,
            "botocore.endpoint",
            &format!(
                "Making request for OperationModel(name={}) with params: {{'url': '{url}', 'method': '{}', 'headers': {}, 'body': {}}}",
                op.name,
                op.method,
                redacted_headers(&headers),
                body_text
            ),
        );
        let mut request = self.http.post(parsed.clone()).body(body_text.clone());
        for (name, value) in &headers {
            request = request.header(name.as_str(), value.as_str());
        }
        let response = match request.send().await {
            Ok(r) => r,
            Err(e) => {
                debug_log(
                    self.debug,
                    "botocore.endpoint",
                    &format!("Exception received when sending HTTP request: {e:?}"),
                );
                let message = if e.is_timeout() {
                    format!("Read timeout on endpoint URL: \"{url}\"")
                } else {
                    format!("Could not connect to the endpoint URL: \"{url}\"")
                };
                return Err((true, CliError::Other(message)));
            }
        };
        let status = response.status();
        let response_headers = response.headers().clone();
        debug_log(
            self.debug,
            "botocore.parsers",
            &format!("Response headers: {response_headers:?}"),
        );
        if status.is_success() {
            return Ok(response);
        }
        let text = self.read_text(response).await?;
        let body = parse_json(&text)
            .unwrap_or_else(|_| Value::Map(vec![("message".to_owned(), Value::Str(text.clone()))]));
        let clean = |code: &str| -> String {
            let code = code.split(':').next().unwrap_or(code);
            code.rsplit('#').next().unwrap_or(code).to_owned()
        };
        let generic_5xx = status.as_u16() >= 500
            && (text.trim().is_empty() || text.trim_start().starts_with("<html>"));
        let (code, message) = if generic_5xx {
            (
                status.as_u16().to_string(),
                status.canonical_reason().unwrap_or("").to_owned(),
            )
        } else {
            let header_code = response_headers
                .get("x-amzn-errortype")
                .and_then(|v| v.to_str().ok())
                .map(clean);
            let body_code = ["__type", "code", "Code"]
                .iter()
                .find_map(|k| body.get(k).and_then(Value::as_str))
                .map(clean);
            let code = header_code
                .or(body_code)
                .unwrap_or_else(|| status.as_u16().to_string());
            let message = body
                .get("message")
                .or_else(|| body.get("Message"))
                .map(Value::py_str)
                .unwrap_or_default();
            (code, message)
        };
        let retryable = status.as_u16() >= 500
            || matches!(
                code.as_str(),
                "Throttling"
                    | "ThrottlingException"
                    | "ThrottledException"
                    | "RequestThrottledException"
                    | "TooManyRequestsException"
                    | "ProvisionedThroughputExceededException"
                    | "TransactionInProgressException"
                    | "RequestLimitExceeded"
                    | "BandwidthLimitExceeded"
                    | "LimitExceededException"
                    | "RequestThrottled"
                    | "SlowDown"
                    | "PriorRequestNotComplete"
                    | "EC2ThrottledException"
            );
        Err((
            retryable,
            CliError::Service {
                code,
                operation: op.name.clone(),
                message,
                retries: None,
            },
        ))
    }
}

/// SigV4 for one JSON POST, signing exactly what botocore signs: `content-type;host;x-amz-date`
/// (+ `x-amz-security-token`). Returns the headers to add. `service` is the signing name (`kinesisvideo`).
pub fn sign_request(
    host: &str,
    path: &str,
    body: &str,
    credentials: &sigv4::Credentials,
    region: &str,
    service: &str,
    time: SystemTime,
) -> Vec<(String, String)> {
    let headers = [("content-type", "application/json"), ("host", host)];
    let request = sigv4::Request {
        method: "POST",
        path,
        query: "",
        headers: &headers,
    };
    let params = sigv4::SigningParams {
        credentials,
        region,
        service,
        time,
    };
    sigv4::sign(&request, &sigv4::sha256_hex(body.as_bytes()), &params)
}

fn redacted_headers(headers: &[(String, String)]) -> String {
    let parts: Vec<String> = headers
        .iter()
        .map(|(k, v)| {
            let lower = k.to_ascii_lowercase();
            let shown = if lower == "x-amz-security-token" {
                "<redacted>".to_owned()
            } else if lower == "authorization" {
                // Keep the key id and signed headers (not secret); drop the signature.
                match v.split_once("Signature=") {
                    Some((head, _)) => format!("{head}Signature=<redacted>"),
                    None => "<redacted>".to_owned(),
                }
            } else {
                v.clone()
            };
            format!("'{k}': '{shown}'")
        })
        .collect();
    format!("{{{}}}", parts.join(", "))
}

/// `--cli-auto-prompt`: on a terminal, ask for each parameter not already on the command line (required first).
fn prompt_for_parameters(
    service: &Service,
    op: &Operation,
    mut argv: Vec<String>,
) -> Result<Vec<String>, CliError> {
    let stdin = std::io::stdin();
    if !stdin.is_terminal() {
        return Ok(argv);
    }
    let mut table = params::arg_table(service, op);
    table.sort_by_key(|a| !a.required);
    let mut stderr = std::io::stderr();
    for arg in table {
        if argv
            .iter()
            .any(|a| a == &arg.cli_name || a.starts_with(&format!("{}=", arg.cli_name)))
        {
            continue;
        }
        let shape = service.shape(&arg.shape);
        let mut hint = shape.type_name.clone();
        if !shape.enum_values.is_empty() {
            hint = shape.enum_values.join("|");
        }
        let _ = write!(
            stderr,
            "{} ({hint}){}: ",
            arg.cli_name,
            if arg.required { " [required]" } else { "" }
        );
        let _ = stderr.flush();
        let mut line = String::new();
        if stdin
            .read_line(&mut line)
            .map_err(|e| CliError::Other(e.to_string()))?
            == 0
        {
            break;
        }
        let line = line.trim_end_matches(['\n', '\r']);
        if !line.is_empty() {
            argv.push(arg.cli_name.clone());
            argv.push(line.to_owned());
        }
    }
    Ok(argv)
}

fn service_help(service: &Service) -> String {
    let mut out = format!("{}\n\nAvailable commands:\n", service.cli_name);
    for op in &service.operations {
        out.push_str(&format!("  o {}\n", op.cli_name));
    }
    out
}

fn operation_help(service: &Service, op: &Operation) -> String {
    let mut out = format!("{}\n\nSynopsis:\n  {}\n", op.cli_name, op.cli_name);
    for arg in params::arg_table(service, op) {
        let shape = service.shape(&arg.shape);
        let line = if arg.required {
            format!("    {} <value>\n", arg.cli_name)
        } else {
            format!("    [{} <value>]\n", arg.cli_name)
        };
        out.push_str(&line);
        let _ = shape;
    }
    if op.pagination.is_some() {
        out.push_str("    [--starting-token <value>]\n    [--page-size <value>]\n    [--max-items <value>]\n");
    }
    if op.streaming_output.is_some() {
        // awscli's synopsis: the positional last; no input documents or skeletons for these operations.
        out.push_str(
            "    <outfile>\n\noutfile (string): Filename where the content will be saved\n",
        );
    } else {
        out.push_str(
            "    [--cli-input-json | --cli-input-yaml]\n    [--generate-cli-skeleton <value>]\n",
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globals_anywhere() {
        let argv: Vec<String> = [
            "--region",
            "eu-west-1",
            "kinesisvideo",
            "list-streams",
            "--output=text",
            "--debug",
            "--max-items",
            "3",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let (g, rest) = parse_globals(&argv).unwrap();
        assert_eq!(g.region.as_deref(), Some("eu-west-1"));
        assert_eq!(g.output.as_deref(), Some("text"));
        assert!(g.debug);
        assert_eq!(rest, ["kinesisvideo", "list-streams", "--max-items", "3"]);
    }

    #[test]
    fn command_word_skips_global_options() {
        let words = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            command_word(&words(&["--region", "x", "--debug", "kinesisvideo"])),
            Some("kinesisvideo")
        );
        assert_eq!(
            command_word(&words(&["put-media", "--stream-name", "kinesisvideo"])),
            Some("put-media")
        );
        assert_eq!(command_word(&words(&["--version"])), None);
    }

    #[test]
    fn streaming_operation_help_shows_the_outfile_positional() {
        let media = model::load("kinesis-video-media").unwrap();
        let help = operation_help(&media, media.operation("get-media").unwrap());
        assert!(
            help.contains("    --start-selector <value>\n    <outfile>\n"),
            "{help}"
        );
        assert!(!help.contains("--cli-input-json"), "{help}");
        let control = model::load("kinesisvideo").unwrap();
        let help = operation_help(&control, control.operation("list-streams").unwrap());
        assert!(!help.contains("<outfile>") && help.contains("--cli-input-json"));
    }

    #[test]
    fn resume_token_is_botocores() {
        // base64.b64encode(json.dumps({"NextToken": "abc", "boto_truncate_amount": 2}).encode())
        let token = Value::Map(vec![
            ("NextToken".into(), Value::Str("abc".into())),
            ("boto_truncate_amount".into(), Value::Int(2)),
        ]);
        assert_eq!(
            encode_resume_token(&token),
            "eyJOZXh0VG9rZW4iOiAiYWJjIiwgImJvdG9fdHJ1bmNhdGVfYW1vdW50IjogMn0="
        );
        assert_eq!(
            decode_starting_token(&encode_resume_token(&token)).unwrap(),
            (Some("abc".into()), 2)
        );
    }
}
