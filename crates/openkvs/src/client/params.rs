//! An operation's command-line parameters, driven by its input shape: the argument table (awscli
//! `clidriver`/`arguments.py`), value unpacking (`argprocess.py`: scalars, shorthand, JSON, `file://`),
//! `--cli-input-json`/`--cli-input-yaml`, `--generate-cli-skeleton`, botocore's client-side validation
//! (`validate.py`: required, min, types) and serialisation (`serialize.py`: timestamps as whole epoch seconds).

use super::model::{xform_name, Operation, Service};
use super::shorthand;
use super::timefmt::parse_timestamp;
use super::value::{parse_json, to_json_pretty, Value};
use super::CliError;

/// One `--option` of an operation.
#[derive(Debug, Clone)]
pub(crate) struct ArgSpec {
    /// `--stream-name`.
    pub(crate) cli_name: String,
    /// `StreamName`.
    pub(crate) member: String,
    pub(crate) shape: String,
    pub(crate) required: bool,
}

/// Paginator options the AWS CLI adds to paginated operations.
#[derive(Debug, Clone, Default)]
pub(crate) struct Paging {
    pub(crate) starting_token: Option<String>,
    pub(crate) page_size: Option<i64>,
    pub(crate) max_items: Option<i64>,
    /// False when the user passed the service's own token/limit (`--next-token`, `--max-results`).
    pub(crate) enabled: bool,
}

/// The parsed command line of one operation.
#[derive(Debug, Clone)]
pub(crate) struct OpCall {
    /// Request parameters (a map, command-line members first in model order, then `--cli-input-*` extras).
    pub(crate) params: Value,
    pub(crate) paging: Paging,
    /// `--generate-cli-skeleton` value (`input`, `yaml-input`, `output`).
    pub(crate) skeleton: Option<String>,
    /// The `outfile` positional argument of an operation with a streaming output (always set for those).
    pub(crate) outfile: Option<String>,
}

/// The argument table of an operation, in input-member order.
pub(crate) fn arg_table(service: &Service, op: &Operation) -> Vec<ArgSpec> {
    let input = service.shape(&op.input);
    input
        .members
        .iter()
        .map(|(member, shape)| ArgSpec {
            cli_name: format!("--{}", xform_name(member, '-')),
            member: member.clone(),
            shape: shape.clone(),
            required: input.required.contains(member),
        })
        .collect()
}

fn usage_error(message: String) -> CliError {
    CliError::Usage(message)
}

fn param_error(cli_name: &str, message: &str) -> CliError {
    CliError::Param(format!("Error parsing parameter '{cli_name}': {message}"))
}

/// argparse's rule for whether a token can be an option's value: not `-x`/`--x`, unless it looks like a
/// negative number.
fn can_be_value(token: &str) -> bool {
    !token.starts_with('-') || token.len() == 1 || token[1..].parse::<f64>().is_ok()
}

/// Whether argparse reads `token` as a positional argument rather than an option (`ArgumentParser.
/// _parse_optional`): anything not starting with `-`, `-` itself, negative numbers, and tokens with a space
/// unless they are `--option=value` of a known option.
fn is_positional(token: &str, table: &[ArgSpec]) -> bool {
    if !token.starts_with('-') || token == "-" {
        return true;
    }
    let digits = &token[1..];
    let negative_number = digits.chars().all(|c| c.is_ascii_digit())
        || digits.split_once('.').is_some_and(|(int, frac)| {
            int.chars().all(|c| c.is_ascii_digit())
                && !frac.is_empty()
                && frac.chars().all(|c| c.is_ascii_digit())
        });
    if negative_number {
        return true;
    }
    let known_with_value = token
        .split_once('=')
        .is_some_and(|(name, _)| table.iter().any(|a| a.cli_name == name));
    token.contains(' ') && !known_with_value
}

/// Parses the operation's arguments (global options already removed). Operations with a streaming output
/// take one positional argument, `outfile` (awscli `StreamingOutputArgument`), and no
/// `--cli-input-json`/`--cli-input-yaml`/`--generate-cli-skeleton` (awscli leaves those out when the
/// argument table has an `outfile`).
pub(crate) fn parse_args(
    service: &Service,
    op: &Operation,
    argv: &[String],
) -> Result<OpCall, CliError> {
    let table = arg_table(service, op);
    let mut given: Vec<(usize, Vec<String>)> = Vec::new();
    let mut unknown: Vec<String> = Vec::new();
    let mut cli_input_json = None;
    let mut cli_input_yaml = None;
    let mut skeleton = None;
    let mut paging = Paging {
        enabled: op.pagination.is_some(),
        ..Paging::default()
    };
    let mut starting_token = None;
    let mut page_size = None;
    let mut max_items = None;
    let streaming = op.streaming_output.is_some();
    let mut outfile: Option<String> = None;
    // After a bare `--`, argparse reads every token as a positional (how to pass `outfile` right after a
    // list option, which would otherwise take it as one more item).
    let mut only_positionals = false;
    let mut i = 0;
    while i < argv.len() {
        let token = &argv[i];
        i += 1;
        if streaming && token == "--" && !only_positionals {
            only_positionals = true;
            continue;
        }
        if streaming && outfile.is_none() && (only_positionals || is_positional(token, &table)) {
            outfile = Some(token.clone());
            continue;
        }
        let stripped = match token.strip_prefix("--") {
            Some(stripped) if !only_positionals => stripped,
            _ => {
                unknown.push(token.clone());
                continue;
            }
        };
        let (name, inline) = match stripped.split_once('=') {
            Some((n, v)) => (format!("--{n}"), Some(v.to_owned())),
            None => (token.clone(), None),
        };
        let spec_index = table.iter().position(|a| a.cli_name == name);
        let is_list =
            spec_index.is_some_and(|k| service.shape(&table[k].shape).type_name == "list");
        // Every option here takes one value, lists take one or more, `--generate-cli-skeleton` zero or one.
        let optional_value = name == "--generate-cli-skeleton";
        let known = spec_index.is_some()
            || (!streaming
                && matches!(
                    name.as_str(),
                    "--cli-input-json" | "--cli-input-yaml" | "--generate-cli-skeleton"
                ))
            || (op.pagination.is_some()
                && matches!(
                    name.as_str(),
                    "--starting-token" | "--page-size" | "--max-items"
                ));
        if !known {
            unknown.push(token.clone());
            continue;
        }
        let mut values = Vec::new();
        if let Some(v) = inline {
            values.push(v);
        } else {
            while i < argv.len() && can_be_value(&argv[i]) {
                values.push(argv[i].clone());
                i += 1;
                if !is_list {
                    break;
                }
            }
        }
        if values.is_empty() && !optional_value {
            let what = if is_list {
                "expected at least one argument"
            } else {
                "expected one argument"
            };
            return Err(usage_error(format!("argument {name}: {what}")));
        }
        let first = values.first().cloned();
        match name.as_str() {
            "--cli-input-json" => cli_input_json = first,
            "--cli-input-yaml" => cli_input_yaml = first,
            "--generate-cli-skeleton" => {
                let choice = first.unwrap_or_else(|| "input".to_owned());
                if !matches!(choice.as_str(), "input" | "output" | "yaml-input") {
                    return Err(usage_error(
                        "argument --generate-cli-skeleton: Invalid choice, valid choices are:\n\n\
                         input                                    | output                                  \n\
                         yaml-input                              "
                            .to_owned(),
                    ));
                }
                skeleton = Some(choice);
            }
            "--starting-token" => starting_token = first,
            "--page-size" => {
                page_size = Some(parse_int_arg(&name, first.as_deref().unwrap_or(""))?)
            }
            "--max-items" => {
                max_items = Some(parse_int_arg(&name, first.as_deref().unwrap_or(""))?)
            }
            _ => {
                let k = spec_index.unwrap_or_default();
                given.retain(|(existing, _)| *existing != k);
                given.push((k, values));
            }
        }
    }
    // argparse reports its own errors (exclusive options, then missing required ones) before awscli
    // reports what argparse left over as unknown.
    if cli_input_json.is_some() && cli_input_yaml.is_some() {
        return Err(usage_error(
            "argument --cli-input-yaml: not allowed with argument --cli-input-json".to_owned(),
        ));
    }
    // `--cli-input-*` and input skeletons make every argument optional (awscli `OverrideRequiredArgsArgument`).
    let input_skeleton = matches!(skeleton.as_deref(), Some("input" | "yaml-input"));
    if cli_input_json.is_none() && cli_input_yaml.is_none() && !input_skeleton {
        let mut missing: Vec<&str> = table
            .iter()
            .enumerate()
            .filter(|(k, a)| a.required && !given.iter().any(|(g, _)| g == k))
            .map(|(_, a)| a.cli_name.as_str())
            .collect();
        if streaming && outfile.is_none() {
            missing.push("outfile");
        }
        if !missing.is_empty() {
            return Err(usage_error(format!(
                "the following arguments are required: {}",
                missing.join(", ")
            )));
        }
    }
    if !unknown.is_empty() {
        return Err(CliError::UnknownOptions(unknown.join(", ")));
    }

    let mut params = Value::Map(Vec::new());
    given.sort_by_key(|(k, _)| *k);
    for (k, values) in &given {
        let spec = &table[*k];
        let value = unpack(service, spec, values)?;
        params.set(&spec.member, value);
    }
    if let Some(pagination) = &op.pagination {
        if params.get(&pagination.input_token).is_some()
            || params.get(&pagination.limit_key).is_some()
        {
            paging.enabled = false;
        }
    }
    let input_doc = match (cli_input_json, cli_input_yaml) {
        (Some(text), _) => {
            let text = resolve_paramfile(&text).map_err(|e| param_error("cli-input-json", &e))?;
            Some(parse_json(&text).map_err(|e| {
                param_error(
                    "cli-input-json",
                    &format!("Invalid JSON: {e}\nJSON received: {text}"),
                )
            })?)
        }
        (None, Some(text)) => {
            let text = resolve_paramfile(&text).map_err(|e| param_error("cli-input-yaml", &e))?;
            Some(super::yaml::parse_yaml(&text).map_err(|e| param_error("cli-input-yaml", &e))?)
        }
        _ => None,
    };
    if let Some(doc) = input_doc {
        let Value::Map(pairs) = doc else {
            return Err(CliError::Param(
                "Invalid type for parameter cli-input-json: the input must be a JSON object"
                    .to_owned(),
            ));
        };
        for (key, value) in pairs {
            if params.get(&key).is_none() {
                params.set(&key, value);
            }
        }
    }
    if let Some(pagination) = &op.pagination {
        // Paging options set in --cli-input-json also count (awscli `check_should_enable_pagination_call_parameters`).
        if params.get(&pagination.input_token).is_some()
            || params.get(&pagination.limit_key).is_some()
        {
            paging.enabled = false;
        }
        for key in ["StartingToken", "PageSize", "MaxItems"] {
            if let Some(v) = params.remove(key) {
                match (key, v) {
                    ("StartingToken", Value::Str(s)) => starting_token = starting_token.or(Some(s)),
                    ("PageSize", Value::Int(n)) => page_size = page_size.or(Some(n)),
                    ("MaxItems", Value::Int(n)) => max_items = max_items.or(Some(n)),
                    _ => {}
                }
            }
        }
    }
    paging.starting_token = starting_token;
    paging.page_size = page_size;
    paging.max_items = max_items;
    Ok(OpCall {
        params,
        paging,
        skeleton,
        outfile,
    })
}

fn parse_int_arg(name: &str, text: &str) -> Result<i64, CliError> {
    text.trim()
        .parse()
        .map_err(|_| usage_error(format!("argument {name}: invalid int value: '{text}'")))
}

/// `file://path` → the file's text (awscli `paramfile.py`); other values unchanged.
fn resolve_paramfile(value: &str) -> Result<String, String> {
    if let Some(path) = value.strip_prefix("file://") {
        let path = expand_user(path);
        return std::fs::read_to_string(&path)
            .map_err(|e| format!("Unable to load paramfile {value}: {e}"));
    }
    if let Some(path) = value.strip_prefix("fileb://") {
        let path = expand_user(path);
        let bytes =
            std::fs::read(&path).map_err(|e| format!("Unable to load paramfile {value}: {e}"))?;
        return Ok(String::from_utf8_lossy(&bytes).into_owned());
    }
    Ok(value.to_owned())
}

fn expand_user(path: &str) -> String {
    match (path.strip_prefix("~/"), std::env::var("HOME")) {
        (Some(rest), Ok(home)) => format!("{home}/{rest}"),
        _ => path.to_owned(),
    }
}

/// awscli `unpack_cli_arg` + the shorthand handler, for one argument's raw values.
fn unpack(service: &Service, spec: &ArgSpec, values: &[String]) -> Result<Value, CliError> {
    let shape = service.shape(&spec.shape);
    let resolved: Vec<String> = values
        .iter()
        .map(|v| resolve_paramfile(v).map_err(|e| param_error(&spec.cli_name, &e)))
        .collect::<Result<_, _>>()?;
    let first = resolved.first().cloned().unwrap_or_default();
    match shape.type_name.as_str() {
        "structure" | "map" => {
            if first.trim_start().starts_with('{') {
                return parse_json(&first).map_err(|e| {
                    param_error(
                        &spec.cli_name,
                        &format!("Invalid JSON: {e}\nJSON received: {first}"),
                    )
                });
            }
            let mut parsed =
                shorthand::parse(&first).map_err(|e| param_error(&spec.cli_name, &e.0))?;
            shorthand::back_compat(service, &spec.shape, &mut parsed)
                .map_err(|e| param_error(&spec.cli_name, &e.0))?;
            Ok(parsed)
        }
        "list" => {
            if resolved.len() == 1 && first.trim_start().starts_with('[') {
                return parse_json(&first).map_err(|e| {
                    param_error(
                        &spec.cli_name,
                        &format!("Invalid JSON: {e}\nJSON received: {first}"),
                    )
                });
            }
            let member = shape.member.clone().unwrap_or_default();
            let member_shape = service.shape(&member);
            let mut items = Vec::new();
            for v in &resolved {
                if member_shape.is_scalar() {
                    items.push(unpack_scalar(&member_shape.type_name, v, &spec.cli_name)?);
                } else {
                    let mut parsed = if v.trim_start().starts_with('{') {
                        parse_json(v).map_err(|e| {
                            param_error(
                                &spec.cli_name,
                                &format!("Invalid JSON: {e}\nJSON received: {v}"),
                            )
                        })?
                    } else {
                        shorthand::parse(v).map_err(|e| param_error(&spec.cli_name, &e.0))?
                    };
                    shorthand::back_compat(service, &member, &mut parsed)
                        .map_err(|e| param_error(&spec.cli_name, &e.0))?;
                    items.push(parsed);
                }
            }
            Ok(Value::List(items))
        }
        scalar => unpack_scalar(scalar, &first, &spec.cli_name),
    }
}

/// awscli `unpack_scalar_cli_arg`: integers and floats converted, everything else kept as text.
fn unpack_scalar(type_name: &str, value: &str, cli_name: &str) -> Result<Value, CliError> {
    match type_name {
        "integer" | "long" => value.trim().parse::<i64>().map(Value::Int).map_err(|_| {
            CliError::Param(format!("invalid literal for int() with base 10: '{value}'"))
        }),
        "double" | "float" => {
            value.trim().parse::<f64>().map(Value::Float).map_err(|_| {
                CliError::Param(format!("could not convert string to float: '{value}'"))
            })
        }
        "boolean" => Ok(Value::Bool(!value.eq_ignore_ascii_case("false"))),
        _ => {
            let _ = cli_name;
            Ok(Value::Str(value.to_owned()))
        }
    }
}

/// Python `type(value)` as botocore's messages print it.
fn py_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "<class 'NoneType'>",
        Value::Bool(_) => "<class 'bool'>",
        Value::Int(_) => "<class 'int'>",
        Value::Float(_) => "<class 'float'>",
        Value::Str(_) => "<class 'str'>",
        Value::List(_) => "<class 'list'>",
        Value::Map(_) => "<class 'collections.OrderedDict'>",
    }
}

/// botocore `ParamValidator`: returns the report lines (empty = valid).
pub(crate) fn validate(service: &Service, shape_name: &str, value: &Value) -> Vec<String> {
    let mut errors = Vec::new();
    validate_into(service, shape_name, value, "", &mut errors);
    errors
}

fn display_name(name: &str) -> &str {
    if name.is_empty() {
        "input"
    } else {
        name.strip_prefix('.').unwrap_or(name)
    }
}

fn invalid_type(errors: &mut Vec<String>, name: &str, value: &Value, valid: &str) {
    errors.push(format!(
        "Invalid type for parameter {}, value: {}, type: {}, valid types: {valid}",
        display_name(name),
        value.py_str(),
        py_type(value)
    ));
}

fn validate_into(
    service: &Service,
    shape_name: &str,
    value: &Value,
    name: &str,
    errors: &mut Vec<String>,
) {
    let shape = service.shape(shape_name);
    let min = shape.min;
    match shape.type_name.as_str() {
        "structure" => {
            let Value::Map(pairs) = value else {
                return invalid_type(errors, name, value, "<class 'dict'>");
            };
            for required in &shape.required {
                if !pairs.iter().any(|(k, _)| k == required) {
                    errors.push(format!(
                        "Missing required parameter in {}: \"{required}\"",
                        display_name(name)
                    ));
                }
            }
            let valid: Vec<&str> = shape.members.iter().map(|(m, _)| m.as_str()).collect();
            for (key, _) in pairs {
                if !valid.contains(&key.as_str()) {
                    errors.push(format!(
                        "Unknown parameter in {}: \"{key}\", must be one of: {}",
                        display_name(name),
                        valid.join(", ")
                    ));
                }
            }
            for (key, item) in pairs {
                if let Some((_, member_shape)) = shape.members.iter().find(|(m, _)| m == key) {
                    validate_into(
                        service,
                        member_shape,
                        item,
                        &format!("{name}.{key}"),
                        errors,
                    );
                }
            }
        }
        "list" => {
            let Value::List(items) = value else {
                return invalid_type(errors, name, value, "<class 'list'>, <class 'tuple'>");
            };
            check_min(errors, name, items.len() as f64, min, "length");
            if let Some(member) = &shape.member {
                for (i, item) in items.iter().enumerate() {
                    validate_into(service, member, item, &format!("{name}[{i}]"), errors);
                }
            }
        }
        "map" => {
            let Value::Map(pairs) = value else {
                return invalid_type(errors, name, value, "<class 'dict'>");
            };
            for (key, item) in pairs {
                if let Some(key_shape) = &shape.key {
                    validate_into(
                        service,
                        key_shape,
                        &Value::Str(key.clone()),
                        &format!("{name} (key: {key})"),
                        errors,
                    );
                }
                if let Some(value_shape) = &shape.value {
                    validate_into(service, value_shape, item, &format!("{name}.{key}"), errors);
                }
            }
        }
        "string" => match value {
            Value::Str(s) => check_min(errors, name, s.chars().count() as f64, min, "length"),
            _ => invalid_type(errors, name, value, "<class 'str'>"),
        },
        "integer" | "long" => match value {
            Value::Int(i) => check_min(errors, name, *i as f64, min, "value"),
            _ => invalid_type(errors, name, value, "<class 'int'>"),
        },
        "double" | "float" => match value {
            Value::Int(_) | Value::Float(_) => check_min(
                errors,
                name,
                value.as_f64().unwrap_or_default(),
                min,
                "value",
            ),
            _ => invalid_type(
                errors,
                name,
                value,
                "<class 'float'>, <class 'decimal.Decimal'>, <class 'int'>",
            ),
        },
        "boolean" if !matches!(value, Value::Bool(_)) => {
            invalid_type(errors, name, value, "<class 'bool'>");
        }
        "timestamp" => {
            let ok = match value {
                Value::Int(_) | Value::Float(_) => true,
                Value::Str(s) => parse_timestamp(s).is_some(),
                _ => false,
            };
            if !ok {
                invalid_type(
                    errors,
                    name,
                    value,
                    "<class 'datetime.datetime'>, timestamp-string",
                );
            }
        }
        _ => {}
    }
}

fn check_min(errors: &mut Vec<String>, name: &str, actual: f64, min: Option<f64>, what: &str) {
    if let Some(min) = min {
        if actual < min {
            let (kind, label) = if what == "length" {
                ("Invalid length", "valid min length")
            } else {
                ("Invalid value", "valid min value")
            };
            errors.push(format!(
                "{kind} for parameter {}, value: {}, {label}: {}",
                display_name(name),
                Value::Float(actual).py_str().trim_end_matches(".0"),
                Value::Float(min).py_str().trim_end_matches(".0")
            ));
        }
    }
}

/// botocore's rest-json serialiser: the shape decides each value's wire form (timestamps → whole epoch seconds).
pub(crate) fn serialize(service: &Service, shape_name: &str, value: &Value) -> Value {
    let shape = service.shape(shape_name);
    match (shape.type_name.as_str(), value) {
        ("structure", Value::Map(pairs)) => Value::Map(
            pairs
                .iter()
                .filter_map(|(k, v)| {
                    let (_, member_shape) = shape.members.iter().find(|(m, _)| m == k)?;
                    Some((k.clone(), serialize(service, member_shape, v)))
                })
                .collect(),
        ),
        ("list", Value::List(items)) => {
            let member = shape.member.clone().unwrap_or_default();
            Value::List(
                items
                    .iter()
                    .map(|i| serialize(service, &member, i))
                    .collect(),
            )
        }
        ("map", Value::Map(pairs)) => {
            let value_shape = shape.value.clone().unwrap_or_default();
            Value::Map(
                pairs
                    .iter()
                    .map(|(k, v)| (k.clone(), serialize(service, &value_shape, v)))
                    .collect(),
            )
        }
        ("timestamp", v) => {
            let epoch = match v {
                Value::Str(s) => parse_timestamp(s).unwrap_or_default(),
                other => other.as_f64().unwrap_or_default(),
            };
            Value::Int(epoch.floor() as i64)
        }
        _ => value.clone(),
    }
}

/// botocore `ArgumentGenerator`: the input skeleton (`use_member_names=false`) or the output skeleton (`true`).
/// Enums take their first value (botocore picks one at random).
pub(crate) fn skeleton(
    service: &Service,
    shape_name: &str,
    use_member_names: bool,
    name: &str,
    stack: &mut Vec<String>,
) -> Value {
    let shape = service.shape(shape_name).clone();
    stack.push(shape.name.clone());
    let out = match shape.type_name.as_str() {
        "structure" => {
            if stack.iter().filter(|s| **s == shape.name).count() > 1 {
                Value::Map(Vec::new())
            } else {
                Value::Map(
                    shape
                        .members
                        .iter()
                        .map(|(m, s)| (m.clone(), skeleton(service, s, use_member_names, m, stack)))
                        .collect(),
                )
            }
        }
        "list" => {
            let member = shape.member.clone().unwrap_or_default();
            let item_name = if use_member_names {
                member.clone()
            } else {
                String::new()
            };
            Value::List(vec![skeleton(
                service,
                &member,
                use_member_names,
                &item_name,
                stack,
            )])
        }
        "map" => {
            let value_shape = shape.value.clone().unwrap_or_default();
            Value::Map(vec![(
                "KeyName".to_owned(),
                skeleton(service, &value_shape, use_member_names, "", stack),
            )])
        }
        "string" => {
            if use_member_names {
                Value::Str(name.to_owned())
            } else {
                Value::Str(shape.enum_values.first().cloned().unwrap_or_default())
            }
        }
        "integer" | "long" => Value::Int(0),
        "float" | "double" => Value::Float(0.0),
        "boolean" => Value::Bool(true),
        "timestamp" => Value::Str("1970-01-01T00:00:00".to_owned()),
        _ => Value::Null,
    };
    stack.pop();
    out
}

/// What `--generate-cli-skeleton` prints.
pub(crate) fn render_skeleton(service: &Service, op: &Operation, kind: &str) -> String {
    match kind {
        "output" => {
            let v = skeleton(service, &op.output, true, "", &mut Vec::new());
            format!("{}\n", to_json_pretty(&v))
        }
        "yaml-input" => {
            let v = skeleton(service, &op.input, false, "", &mut Vec::new());
            super::yaml::skeleton_yaml(service, &op.input, &v)
        }
        _ => {
            let v = skeleton(service, &op.input, false, "", &mut Vec::new());
            format!("{}\n", to_json_pretty(&v))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::model;
    use super::*;

    fn parse(service: &str, op: &str, argv: &[&str]) -> Result<OpCall, CliError> {
        let service = model::load(service).unwrap();
        let op = service.operation(op).unwrap().clone();
        let argv: Vec<String> = argv.iter().map(|s| s.to_string()).collect();
        parse_args(&service, &op, &argv)
    }

    fn usage(result: Result<OpCall, CliError>) -> String {
        match result {
            Err(CliError::Usage(m)) => m,
            other => panic!("expected a usage error, got {other:?}"),
        }
    }

    fn unknown(result: Result<OpCall, CliError>) -> String {
        match result {
            Err(CliError::UnknownOptions(m)) => m,
            other => panic!("expected unknown options, got {other:?}"),
        }
    }

    #[test]
    fn outfile_is_a_required_positional_listed_last() {
        let media = ["kinesis-video-media", "get-media"];
        assert_eq!(
            usage(parse(media[0], media[1], &[])),
            "the following arguments are required: --start-selector, outfile"
        );
        assert_eq!(
            usage(parse(
                media[0],
                media[1],
                &["--start-selector", "StartSelectorType=NOW"]
            )),
            "the following arguments are required: outfile"
        );
        let call = parse(
            media[0],
            media[1],
            &[
                "out.mkv",
                "--stream-name",
                "s",
                "--start-selector",
                "StartSelectorType=EARLIEST",
            ],
        )
        .unwrap();
        assert_eq!(call.outfile.as_deref(), Some("out.mkv"));
        assert_eq!(
            call.params.get("StartSelector"),
            Some(&Value::Map(vec![(
                "StartSelectorType".into(),
                Value::Str("EARLIEST".into())
            )]))
        );
        // `-` is a file name, not standard output.
        let call = parse(
            media[0],
            media[1],
            &["--start-selector", "StartSelectorType=NOW", "-"],
        )
        .unwrap();
        assert_eq!(call.outfile.as_deref(), Some("-"));
    }

    #[test]
    fn a_list_option_takes_every_following_word_unless_a_double_dash_ends_it() {
        let op = [
            "kinesis-video-archived-media",
            "get-media-for-fragment-list",
        ];
        // As argparse: `--fragments` is greedy, so the intended outfile becomes a fragment number.
        assert_eq!(
            usage(parse(op[0], op[1], &["--fragments", "1", "2", "out"])),
            "the following arguments are required: outfile"
        );
        let call = parse(op[0], op[1], &["--fragments", "1", "2", "--", "out"]).unwrap();
        assert_eq!(call.outfile.as_deref(), Some("out"));
        assert_eq!(
            call.params.get("Fragments"),
            Some(&Value::List(vec![
                Value::Str("1".into()),
                Value::Str("2".into())
            ]))
        );
        let call = parse(op[0], op[1], &["out", "--fragments", "1", "2"]).unwrap();
        assert_eq!(call.outfile.as_deref(), Some("out"));
        // After `--` even option-like words are positionals.
        let call = parse(op[0], op[1], &["--fragments", "1", "--", "--weird"]).unwrap();
        assert_eq!(call.outfile.as_deref(), Some("--weird"));
    }

    #[test]
    fn a_second_positional_and_input_document_options_are_unknown_for_streaming_operations() {
        let clip = |argv: &[&str]| parse("kinesis-video-archived-media", "get-clip", argv);
        let selector = "FragmentSelectorType=SERVER_TIMESTAMP";
        let with_selector = |rest: &[&str]| {
            let mut argv = vec!["--clip-fragment-selector", selector];
            argv.extend_from_slice(rest);
            clip(&argv)
        };
        assert_eq!(unknown(with_selector(&["out1", "out2"])), "out2");
        assert_eq!(
            unknown(with_selector(&["out", "--cli-input-json", "{}"])),
            "--cli-input-json, {}"
        );
        // `--generate-cli-skeleton output`: "output" is the outfile, the option unknown (as the AWS CLI).
        assert_eq!(
            unknown(with_selector(&["--generate-cli-skeleton", "output"])),
            "--generate-cli-skeleton"
        );
        // A missing required argument is reported before unknown options.
        assert_eq!(
            usage(clip(&["--generate-cli-skeleton"])),
            "the following arguments are required: --clip-fragment-selector, outfile"
        );
    }

    #[test]
    fn missing_required_arguments_are_reported_before_unknown_options() {
        assert_eq!(
            usage(parse(
                "kinesisvideo",
                "update-data-retention",
                &["--bogus", "x"]
            )),
            "the following arguments are required: --current-version, --operation, \
             --data-retention-change-in-hours"
        );
        assert_eq!(
            unknown(parse("kinesisvideo", "describe-stream", &["--bogus", "x"])),
            "--bogus, x"
        );
    }

    #[test]
    fn non_streaming_operations_take_no_positional() {
        let call = parse("kinesisvideo", "list-streams", &[]).unwrap();
        assert_eq!(call.outfile, None);
        assert_eq!(
            unknown(parse("kinesisvideo", "list-streams", &["out"])),
            "out"
        );
    }

    #[test]
    fn argparse_positional_rule() {
        let table = Vec::new();
        for token in ["out", "-", "-5", "-1.5", "-a b", "--a b"] {
            assert!(is_positional(token, &table), "{token}");
        }
        for token in ["--x", "-x", "--", "-1.", "-1e5"] {
            assert!(!is_positional(token, &table), "{token}");
        }
        let table = [ArgSpec {
            cli_name: "--stream-name".into(),
            member: "StreamName".into(),
            shape: "StreamName".into(),
            required: false,
        }];
        assert!(!is_positional("--stream-name=a b", &table));
    }
}
