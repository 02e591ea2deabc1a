//! JMESPath (jmespath.org/specification.html) over the order-preserving [`Value`]: the AWS CLI's `--query`.
//! A Pratt parser with jmespath.py's binding powers and its AST node kinds; multi-select hashes keep the
//! expression's key order and objects keep the response's, as the AWS CLI prints them.

use super::value::{to_json_compact, Value};

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Ident(String),
    Quoted(String),
    Literal(Value),
    Number(i64),
    Dot,
    Star,
    Flatten,
    Filter,
    LBracket,
    RBracket,
    LBrace,
    RBrace,
    LParen,
    RParen,
    Comma,
    Colon,
    Current,
    Expref,
    Pipe,
    Or,
    And,
    Not,
    Cmp(Cmp),
    Eof,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Cmp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

/// A parsed expression. Chains such as `a.b.c…` or `a || b || …` parse into trees as deep as they are long, so
/// dropping one does not recurse (see the `Drop` impl).
#[derive(Debug, Clone, PartialEq)]
pub enum Node {
    Identity,
    Current,
    Field(String),
    Literal(Value),
    Sub(Box<Node>, Box<Node>),
    IndexExpr(Box<Node>, Box<Node>),
    Index(i64),
    Slice(Option<i64>, Option<i64>, Option<i64>),
    Projection(Box<Node>, Box<Node>),
    ValueProjection(Box<Node>, Box<Node>),
    FilterProjection(Box<Node>, Box<Node>, Box<Node>),
    Flatten(Box<Node>),
    Or(Box<Node>, Box<Node>),
    And(Box<Node>, Box<Node>),
    Not(Box<Node>),
    Compare(Cmp, Box<Node>, Box<Node>),
    Pipe(Box<Node>, Box<Node>),
    MultiList(Vec<Node>),
    MultiHash(Vec<(String, Node)>),
    Function(String, Vec<Node>),
    Expref(Box<Node>),
}

fn lex(text: &str) -> Result<Vec<Token>, String> {
    let chars: Vec<char> = text.chars().collect();
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        match c {
            ' ' | '\t' | '\n' | '\r' => i += 1,
            'a'..='z' | 'A'..='Z' | '_' => {
                let start = i;
                while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '_') {
                    i += 1;
                }
                tokens.push(Token::Ident(chars[start..i].iter().collect()));
            }
            '0'..='9' | '-' => {
                let start = i;
                i += 1;
                while i < chars.len() && chars[i].is_ascii_digit() {
                    i += 1;
                }
                let s: String = chars[start..i].iter().collect();
                let n = s.parse().map_err(|_| format!("Unknown token '{s}'"))?;
                tokens.push(Token::Number(n));
            }
            '"' | '\'' | '`' => {
                let start = i;
                i += 1;
                while i < chars.len() && chars[i] != c {
                    if chars[i] == '\\' {
                        i += 1;
                    }
                    i += 1;
                }
                if i >= chars.len() {
                    return Err(format!("Unclosed {c} delimiter"));
                }
                let inner: String = chars[start + 1..i].iter().collect();
                i += 1;
                match c {
                    '"' => {
                        let v = super::value::parse_json(&format!("\"{inner}\""))
                            .map_err(|e| format!("Invalid quoted identifier: {e}"))?;
                        tokens.push(Token::Quoted(v.as_str().unwrap_or_default().to_owned()));
                    }
                    '\'' => tokens.push(Token::Literal(Value::Str(inner.replace("\\'", "'")))),
                    _ => {
                        let body = inner.replace("\\`", "`");
                        let v = super::value::parse_json(body.trim())
                            .map_err(|e| format!("Bad token {body}: {e}"))?;
                        tokens.push(Token::Literal(v));
                    }
                }
            }
            '.' => {
                tokens.push(Token::Dot);
                i += 1;
            }
            '*' => {
                tokens.push(Token::Star);
                i += 1;
            }
            '[' => {
                if next == Some(']') {
                    tokens.push(Token::Flatten);
                    i += 2;
                } else if next == Some('?') {
                    tokens.push(Token::Filter);
                    i += 2;
                } else {
                    tokens.push(Token::LBracket);
                    i += 1;
                }
            }
            ']' => {
                tokens.push(Token::RBracket);
                i += 1;
            }
            '{' => {
                tokens.push(Token::LBrace);
                i += 1;
            }
            '}' => {
                tokens.push(Token::RBrace);
                i += 1;
            }
            '(' => {
                tokens.push(Token::LParen);
                i += 1;
            }
            ')' => {
                tokens.push(Token::RParen);
                i += 1;
            }
            ',' => {
                tokens.push(Token::Comma);
                i += 1;
            }
            ':' => {
                tokens.push(Token::Colon);
                i += 1;
            }
            '@' => {
                tokens.push(Token::Current);
                i += 1;
            }
            '&' if next == Some('&') => {
                tokens.push(Token::And);
                i += 2;
            }
            '&' => {
                tokens.push(Token::Expref);
                i += 1;
            }
            '|' if next == Some('|') => {
                tokens.push(Token::Or);
                i += 2;
            }
            '|' => {
                tokens.push(Token::Pipe);
                i += 1;
            }
            '!' if next == Some('=') => {
                tokens.push(Token::Cmp(Cmp::Ne));
                i += 2;
            }
            '!' => {
                tokens.push(Token::Not);
                i += 1;
            }
            '=' if next == Some('=') => {
                tokens.push(Token::Cmp(Cmp::Eq));
                i += 2;
            }
            '<' | '>' => {
                let eq = next == Some('=');
                tokens.push(Token::Cmp(match (c, eq) {
                    ('<', true) => Cmp::Le,
                    ('<', false) => Cmp::Lt,
                    (_, true) => Cmp::Ge,
                    _ => Cmp::Gt,
                }));
                i += if eq { 2 } else { 1 };
            }
            other => return Err(format!("Unknown token '{other}'")),
        }
    }
    tokens.push(Token::Eof);
    Ok(tokens)
}

fn binding_power(token: &Token) -> u8 {
    match token {
        Token::Pipe => 1,
        Token::Or => 2,
        Token::And => 3,
        Token::Cmp(_) => 5,
        Token::Flatten => 9,
        Token::Star => 20,
        Token::Filter => 21,
        Token::Dot => 40,
        Token::Not => 45,
        Token::LBrace => 50,
        Token::LBracket => 55,
        Token::LParen => 60,
        _ => 0,
    }
}

impl Drop for Node {
    /// Takes the children out onto a heap stack and drops them one by one: the recursive drop of a 30 000-long
    /// chain overflowed the stack (found by the `jmespath` fuzz target).
    fn drop(&mut self) {
        let mut pending = Vec::new();
        self.take_children(&mut pending);
        while let Some(mut node) = pending.pop() {
            node.take_children(&mut pending);
        }
    }
}

impl Node {
    /// Moves this node's children to `out`, leaving leaves in their place.
    fn take_children(&mut self, out: &mut Vec<Node>) {
        let mut take = |child: &mut Box<Node>| {
            if !matches!(**child, Node::Identity) {
                out.push(std::mem::replace(&mut **child, Node::Identity));
            }
        };
        match self {
            Node::Identity
            | Node::Current
            | Node::Field(_)
            | Node::Literal(_)
            | Node::Index(_)
            | Node::Slice(..) => {}
            Node::Flatten(x) | Node::Not(x) | Node::Expref(x) => take(x),
            Node::Sub(l, r)
            | Node::IndexExpr(l, r)
            | Node::Projection(l, r)
            | Node::ValueProjection(l, r)
            | Node::Or(l, r)
            | Node::And(l, r)
            | Node::Compare(_, l, r)
            | Node::Pipe(l, r) => {
                take(l);
                take(r);
            }
            Node::FilterProjection(l, r, c) => {
                take(l);
                take(r);
                take(c);
            }
            Node::MultiList(items) | Node::Function(_, items) => out.append(items),
            Node::MultiHash(pairs) => out.extend(pairs.drain(..).map(|(_, node)| node)),
        }
    }
}

struct Parser {
    tokens: Vec<Token>,
    pos: usize,
    /// How many [`Parser::expression`] calls are open.
    depth: usize,
}

/// Deepest nesting the parser and the evaluator follow: the AWS CLI (jmespath.py) stops between 400 and 500
/// with Python's recursion limit, and each level here costs a few KiB of stack.
const MAX_DEPTH: usize = 400;
/// What jmespath.py reports beyond it (Python's `RecursionError`).
const TOO_DEEP: &str = "maximum recursion depth exceeded";

/// Compiles an expression.
pub fn compile(text: &str) -> Result<Node, String> {
    let mut parser = Parser {
        tokens: lex(text)?,
        pos: 0,
        depth: 0,
    };
    let node = parser.expression(0)?;
    if parser.current() != &Token::Eof {
        return Err(format!("Unexpected token: {:?}", parser.current()));
    }
    Ok(node)
}

impl Parser {
    fn current(&self) -> &Token {
        &self.tokens[self.pos.min(self.tokens.len() - 1)]
    }

    fn lookahead(&self, n: usize) -> &Token {
        &self.tokens[(self.pos + n).min(self.tokens.len() - 1)]
    }

    fn advance(&mut self) -> Token {
        let t = self.current().clone();
        self.pos += 1;
        t
    }

    fn expect(&mut self, want: &Token) -> Result<(), String> {
        if self.current() == want {
            self.pos += 1;
            Ok(())
        } else {
            Err(format!("Expecting: {want:?}, got: {:?}", self.current()))
        }
    }

    fn expression(&mut self, bp: u8) -> Result<Node, String> {
        if self.depth >= MAX_DEPTH {
            return Err(TOO_DEEP.to_owned());
        }
        self.depth += 1;
        let node = self.expression_at(bp);
        self.depth -= 1;
        node
    }

    fn expression_at(&mut self, bp: u8) -> Result<Node, String> {
        let token = self.advance();
        let mut left = self.nud(token)?;
        while bp < binding_power(self.current()) {
            let token = self.advance();
            left = self.led(token, left)?;
        }
        Ok(left)
    }

    fn nud(&mut self, token: Token) -> Result<Node, String> {
        match token {
            Token::Literal(v) => Ok(Node::Literal(v)),
            Token::Ident(name) => Ok(Node::Field(name)),
            Token::Quoted(name) => {
                if self.current() == &Token::LParen {
                    return Err("Quoted identifier not allowed for function names.".to_owned());
                }
                Ok(Node::Field(name))
            }
            Token::Star => {
                let right = self.projection_rhs(binding_power(&Token::Star))?;
                Ok(Node::ValueProjection(
                    Box::new(Node::Identity),
                    Box::new(right),
                ))
            }
            Token::Filter => self.led(Token::Filter, Node::Identity),
            Token::LBrace => self.multi_hash(),
            Token::LParen => {
                let e = self.expression(0)?;
                self.expect(&Token::RParen)?;
                Ok(e)
            }
            Token::Flatten => {
                let left = Node::Flatten(Box::new(Node::Identity));
                let right = self.projection_rhs(binding_power(&Token::Flatten))?;
                Ok(Node::Projection(Box::new(left), Box::new(right)))
            }
            Token::Not => Ok(Node::Not(Box::new(
                self.expression(binding_power(&Token::Not))?,
            ))),
            Token::LBracket => match (self.current(), self.lookahead(1)) {
                (Token::Number(_) | Token::Colon, _) => {
                    let right = self.index_expression()?;
                    Ok(self.project_if_slice(Node::Identity, right)?)
                }
                (Token::Star, Token::RBracket) => {
                    self.pos += 2;
                    let right = self.projection_rhs(binding_power(&Token::Star))?;
                    Ok(Node::Projection(Box::new(Node::Identity), Box::new(right)))
                }
                _ => self.multi_list(),
            },
            Token::Current => Ok(Node::Current),
            Token::Expref => Ok(Node::Expref(Box::new(self.expression(0)?))),
            Token::Eof => Err("Incomplete expression".to_owned()),
            other => Err(format!("Unexpected token: {other:?}")),
        }
    }

    fn led(&mut self, token: Token, left: Node) -> Result<Node, String> {
        match token {
            Token::Dot => {
                if self.current() != &Token::Star {
                    let right = self.dot_rhs(binding_power(&Token::Dot))?;
                    Ok(Node::Sub(Box::new(left), Box::new(right)))
                } else {
                    self.advance();
                    let right = self.projection_rhs(binding_power(&Token::Dot))?;
                    Ok(Node::ValueProjection(Box::new(left), Box::new(right)))
                }
            }
            Token::Pipe => Ok(Node::Pipe(Box::new(left), Box::new(self.expression(1)?))),
            Token::Or => Ok(Node::Or(Box::new(left), Box::new(self.expression(2)?))),
            Token::And => Ok(Node::And(Box::new(left), Box::new(self.expression(3)?))),
            Token::Cmp(op) => Ok(Node::Compare(
                op,
                Box::new(left),
                Box::new(self.expression(5)?),
            )),
            Token::LParen => {
                let Node::Field(name) = &left else {
                    return Err("Invalid function name".to_owned());
                };
                let name = name.clone();
                let mut args = Vec::new();
                while self.current() != &Token::RParen {
                    args.push(self.expression(0)?);
                    if self.current() == &Token::Comma {
                        self.advance();
                    } else if self.current() != &Token::RParen {
                        return Err(format!("Expecting: comma, got: {:?}", self.current()));
                    }
                }
                self.expect(&Token::RParen)?;
                Ok(Node::Function(name, args))
            }
            Token::Filter => {
                let condition = self.expression(0)?;
                self.expect(&Token::RBracket)?;
                let right = if self.current() == &Token::Flatten {
                    Node::Identity
                } else {
                    self.projection_rhs(binding_power(&Token::Filter))?
                };
                Ok(Node::FilterProjection(
                    Box::new(left),
                    Box::new(right),
                    Box::new(condition),
                ))
            }
            Token::Flatten => {
                let left = Node::Flatten(Box::new(left));
                let right = self.projection_rhs(binding_power(&Token::Flatten))?;
                Ok(Node::Projection(Box::new(left), Box::new(right)))
            }
            Token::LBracket => {
                if matches!(self.current(), Token::Number(_) | Token::Colon) {
                    let right = self.index_expression()?;
                    self.project_if_slice(left, right)
                } else {
                    self.expect(&Token::Star)?;
                    self.expect(&Token::RBracket)?;
                    let right = self.projection_rhs(binding_power(&Token::Star))?;
                    Ok(Node::Projection(Box::new(left), Box::new(right)))
                }
            }
            other => Err(format!("Unexpected token: {other:?}")),
        }
    }

    fn project_if_slice(&mut self, left: Node, right: Node) -> Result<Node, String> {
        let is_slice = matches!(right, Node::Slice(..));
        let index = Node::IndexExpr(Box::new(left), Box::new(right));
        if is_slice {
            let rhs = self.projection_rhs(binding_power(&Token::Star))?;
            Ok(Node::Projection(Box::new(index), Box::new(rhs)))
        } else {
            Ok(index)
        }
    }

    fn index_expression(&mut self) -> Result<Node, String> {
        if self.current() == &Token::Colon || self.lookahead(1) == &Token::Colon {
            let mut parts = [None, None, None];
            let mut k = 0;
            while self.current() != &Token::RBracket && k < 3 {
                match self.advance() {
                    Token::Colon => k += 1,
                    Token::Number(n) => parts[k] = Some(n),
                    other => return Err(format!("Syntax error, unexpected token: {other:?}")),
                }
            }
            self.expect(&Token::RBracket)?;
            if parts[2] == Some(0) {
                return Err("Invalid slice, step cannot be 0".to_owned());
            }
            Ok(Node::Slice(parts[0], parts[1], parts[2]))
        } else {
            let Token::Number(n) = self.advance() else {
                return Err("Expected a number".to_owned());
            };
            self.expect(&Token::RBracket)?;
            Ok(Node::Index(n))
        }
    }

    fn projection_rhs(&mut self, bp: u8) -> Result<Node, String> {
        let token = self.current().clone();
        if binding_power(&token) < 10 {
            Ok(Node::Identity)
        } else if matches!(token, Token::LBracket | Token::Filter) {
            self.expression(bp)
        } else if token == Token::Dot {
            self.advance();
            self.dot_rhs(bp)
        } else {
            Err(format!("Syntax error, unexpected token: {token:?}"))
        }
    }

    fn dot_rhs(&mut self, bp: u8) -> Result<Node, String> {
        match self.current() {
            Token::Ident(_) | Token::Quoted(_) | Token::Star => self.expression(bp),
            Token::LBracket => {
                self.advance();
                self.multi_list()
            }
            Token::LBrace => {
                self.advance();
                self.multi_hash()
            }
            other => Err(format!(
                "Expecting: identifier, lbracket or lbrace, got: {other:?}"
            )),
        }
    }

    fn multi_list(&mut self) -> Result<Node, String> {
        let mut items = Vec::new();
        loop {
            items.push(self.expression(0)?);
            if self.current() == &Token::RBracket {
                break;
            }
            self.expect(&Token::Comma)?;
        }
        self.expect(&Token::RBracket)?;
        Ok(Node::MultiList(items))
    }

    fn multi_hash(&mut self) -> Result<Node, String> {
        let mut pairs = Vec::new();
        loop {
            let key = match self.advance() {
                Token::Ident(k) | Token::Quoted(k) => k,
                other => return Err(format!("Expecting: identifier, got: {other:?}")),
            };
            self.expect(&Token::Colon)?;
            let value = self.expression(0)?;
            pairs.push((key, value));
            if self.current() == &Token::Comma {
                self.advance();
            } else {
                self.expect(&Token::RBrace)?;
                break;
            }
        }
        Ok(Node::MultiHash(pairs))
    }
}

/// JMESPath truthiness: false, null, "", [] and {} are false; every number is true.
fn truthy(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Str(s) => !s.is_empty(),
        Value::List(l) => !l.is_empty(),
        Value::Map(m) => !m.is_empty(),
        Value::Int(_) | Value::Float(_) => true,
    }
}

fn values_equal(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Int(_) | Value::Float(_), Value::Int(_) | Value::Float(_)) => {
            a.as_f64() == b.as_f64()
        }
        (Value::List(x), Value::List(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| values_equal(p, q))
        }
        (Value::Map(x), Value::Map(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| b.get(k).is_some_and(|w| values_equal(v, w)))
        }
        _ => a == b,
    }
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Int(_) | Value::Float(_) => "number",
        Value::Str(_) => "string",
        Value::List(_) => "array",
        Value::Map(_) => "object",
    }
}

thread_local! {
    /// How many [`search`] calls are open on this thread. Chains such as `a || b || …` parse in a loop into
    /// left-deep trees as deep as they are long, and the evaluator recurses once per level.
    static SEARCH_DEPTH: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// Closes a [`search`] level, however it returns.
struct SearchLevel;

impl Drop for SearchLevel {
    fn drop(&mut self) {
        SEARCH_DEPTH.with(|d| d.set(d.get() - 1));
    }
}

/// Evaluates a compiled expression; deeper than [`MAX_DEPTH`] levels is an error, as in jmespath.py.
pub fn search(node: &Node, value: &Value) -> Result<Value, String> {
    let depth = SEARCH_DEPTH.with(|d| {
        d.set(d.get() + 1);
        d.get()
    });
    let _level = SearchLevel;
    if depth > MAX_DEPTH {
        return Err(TOO_DEEP.to_owned());
    }
    evaluate(node, value)
}

fn evaluate(node: &Node, value: &Value) -> Result<Value, String> {
    Ok(match node {
        Node::Identity | Node::Current => value.clone(),
        Node::Field(name) => value.get(name).cloned().unwrap_or(Value::Null),
        Node::Literal(v) => v.clone(),
        // `a.b.c…`, `a[0][1]…` and `a | b | …` parse into left-deep trees as deep as they are long: walk down
        // the left spine without recursing and apply the right sides in order (jmespath.py keeps a
        // subexpression chain as one flat list, so the AWS CLI takes any length).
        Node::Sub(..) | Node::IndexExpr(..) | Node::Pipe(..) => {
            let mut rights = Vec::new();
            let mut leftmost = node;
            while let Node::Sub(l, r) | Node::IndexExpr(l, r) | Node::Pipe(l, r) = leftmost {
                rights.push(r);
                leftmost = l;
            }
            let mut result = search(leftmost, value)?;
            for right in rights.iter().rev() {
                result = search(right, &result)?;
            }
            result
        }
        Node::Index(i) => match value {
            Value::List(items) => {
                let len = items.len() as i64;
                let k = if *i < 0 { len + i } else { *i };
                if (0..len).contains(&k) {
                    items[k as usize].clone()
                } else {
                    Value::Null
                }
            }
            _ => Value::Null,
        },
        Node::Slice(start, stop, step) => match value {
            Value::List(items) => Value::List(slice(items, *start, *stop, step.unwrap_or(1))),
            Value::Str(s) => {
                let chars: Vec<Value> = s.chars().map(|c| Value::Str(c.to_string())).collect();
                let picked = slice(&chars, *start, *stop, step.unwrap_or(1));
                Value::Str(picked.iter().filter_map(|c| c.as_str()).collect())
            }
            _ => Value::Null,
        },
        Node::Projection(l, r) => match search(l, value)? {
            Value::List(items) => {
                let mut out = Vec::new();
                for item in &items {
                    let v = search(r, item)?;
                    if v != Value::Null {
                        out.push(v);
                    }
                }
                Value::List(out)
            }
            _ => Value::Null,
        },
        Node::ValueProjection(l, r) => match search(l, value)? {
            Value::Map(pairs) => {
                let mut out = Vec::new();
                for (_, item) in &pairs {
                    let v = search(r, item)?;
                    if v != Value::Null {
                        out.push(v);
                    }
                }
                Value::List(out)
            }
            _ => Value::Null,
        },
        Node::FilterProjection(l, r, c) => match search(l, value)? {
            Value::List(items) => {
                let mut out = Vec::new();
                for item in &items {
                    if truthy(&search(c, item)?) {
                        let v = search(r, item)?;
                        if v != Value::Null {
                            out.push(v);
                        }
                    }
                }
                Value::List(out)
            }
            _ => Value::Null,
        },
        Node::Flatten(inner) => match search(inner, value)? {
            Value::List(items) => {
                let mut out = Vec::new();
                for item in items {
                    match item {
                        Value::List(sub) => out.extend(sub),
                        other => out.push(other),
                    }
                }
                Value::List(out)
            }
            _ => Value::Null,
        },
        Node::Or(l, r) => {
            let left = search(l, value)?;
            if truthy(&left) {
                left
            } else {
                search(r, value)?
            }
        }
        Node::And(l, r) => {
            let left = search(l, value)?;
            if !truthy(&left) {
                left
            } else {
                search(r, value)?
            }
        }
        Node::Not(inner) => Value::Bool(!truthy(&search(inner, value)?)),
        Node::Compare(op, l, r) => {
            let (a, b) = (search(l, value)?, search(r, value)?);
            match op {
                Cmp::Eq => Value::Bool(values_equal(&a, &b)),
                Cmp::Ne => Value::Bool(!values_equal(&a, &b)),
                _ => match (a.as_f64(), b.as_f64()) {
                    (Some(x), Some(y)) => Value::Bool(match op {
                        Cmp::Lt => x < y,
                        Cmp::Le => x <= y,
                        Cmp::Gt => x > y,
                        _ => x >= y,
                    }),
                    _ => Value::Null,
                },
            }
        }
        Node::MultiList(items) => {
            if *value == Value::Null {
                Value::Null
            } else {
                Value::List(
                    items
                        .iter()
                        .map(|n| search(n, value))
                        .collect::<Result<_, _>>()?,
                )
            }
        }
        Node::MultiHash(pairs) => {
            if *value == Value::Null {
                Value::Null
            } else {
                let mut out = Value::Map(Vec::new());
                for (k, n) in pairs {
                    out.set(k, search(n, value)?);
                }
                out
            }
        }
        Node::Expref(_) => Value::Null,
        Node::Function(name, args) => call(name, args, value)?,
    })
}

fn slice(items: &[Value], start: Option<i64>, stop: Option<i64>, step: i64) -> Vec<Value> {
    let len = items.len() as i64;
    let cap = |v: i64, lo: i64, hi: i64| {
        if v < 0 {
            (v + len).max(lo)
        } else {
            v.min(hi)
        }
    };
    let mut out = Vec::new();
    if step > 0 {
        let (a, b) = (
            cap(start.unwrap_or(0), 0, len),
            cap(stop.unwrap_or(len), 0, len),
        );
        let mut i = a;
        while i < b {
            out.push(items[i as usize].clone());
            i += step;
        }
    } else {
        let a = start.map(|s| cap(s, -1, len - 1)).unwrap_or(len - 1);
        let b = stop.map(|s| cap(s, -1, len - 1)).unwrap_or(-1);
        let mut i = a;
        while i > b {
            if (0..len).contains(&i) {
                out.push(items[i as usize].clone());
            }
            i += step;
        }
    }
    out
}

fn type_error(function: &str, value: &Value, expected: &str) -> String {
    format!(
        "In function {function}(), invalid type for value: {}, expected one of: {expected}, received: \"{}\"",
        value.py_str(),
        type_name(value)
    )
}

fn compare_sortable(a: &Value, b: &Value) -> std::cmp::Ordering {
    match (a, b) {
        (Value::Str(x), Value::Str(y)) => x.cmp(y),
        _ => a
            .as_f64()
            .partial_cmp(&b.as_f64())
            .unwrap_or(std::cmp::Ordering::Equal),
    }
}

fn number(f: f64) -> Value {
    if f.fract() == 0.0 && f.abs() < 9.0e15 {
        Value::Int(f as i64)
    } else {
        Value::Float(f)
    }
}

fn call(name: &str, args: &[Node], current: &Value) -> Result<Value, String> {
    let arity = |n: usize| -> Result<(), String> {
        if args.len() == n {
            Ok(())
        } else {
            Err(format!(
                "Expected {n} argument{} for function {name}(), received {}",
                if n == 1 { "" } else { "s" },
                args.len()
            ))
        }
    };
    let eval = |i: usize| search(&args[i], current);
    let expref = |i: usize| match &args[i] {
        Node::Expref(inner) => Ok(inner.as_ref()),
        _ => Err(format!(
            "In function {name}(), expected an expression reference"
        )),
    };
    Ok(match name {
        "length" => {
            arity(1)?;
            match eval(0)? {
                Value::Str(s) => Value::Int(s.chars().count() as i64),
                Value::List(l) => Value::Int(l.len() as i64),
                Value::Map(m) => Value::Int(m.len() as i64),
                other => return Err(type_error(name, &other, "['string', 'array', 'object']")),
            }
        }
        "keys" | "values" => {
            arity(1)?;
            match eval(0)? {
                Value::Map(m) => Value::List(
                    m.into_iter()
                        .map(|(k, v)| if name == "keys" { Value::Str(k) } else { v })
                        .collect(),
                ),
                other => return Err(type_error(name, &other, "['object']")),
            }
        }
        "sort" => {
            arity(1)?;
            match eval(0)? {
                Value::List(mut l) => {
                    l.sort_by(compare_sortable);
                    Value::List(l)
                }
                other => return Err(type_error(name, &other, "['array-string', 'array-number']")),
            }
        }
        "sort_by" | "max_by" | "min_by" => {
            arity(2)?;
            let key = expref(1)?;
            let Value::List(items) = eval(0)? else {
                return Err(type_error(name, &eval(0)?, "['array']"));
            };
            let mut keyed = Vec::new();
            for item in items {
                keyed.push((search(key, &item)?, item));
            }
            keyed.sort_by(|a, b| compare_sortable(&a.0, &b.0));
            match name {
                "sort_by" => Value::List(keyed.into_iter().map(|(_, v)| v).collect()),
                "max_by" => keyed.pop().map(|(_, v)| v).unwrap_or(Value::Null),
                _ => keyed
                    .into_iter()
                    .next()
                    .map(|(_, v)| v)
                    .unwrap_or(Value::Null),
            }
        }
        "max" | "min" => {
            arity(1)?;
            let Value::List(mut l) = eval(0)? else {
                return Err(type_error(
                    name,
                    &eval(0)?,
                    "['array-number', 'array-string']",
                ));
            };
            l.sort_by(compare_sortable);
            let picked = if name == "max" {
                l.pop()
            } else {
                l.into_iter().next()
            };
            picked.unwrap_or(Value::Null)
        }
        "sum" | "avg" => {
            arity(1)?;
            let Value::List(l) = eval(0)? else {
                return Err(type_error(name, &eval(0)?, "['array-number']"));
            };
            let total: f64 = l.iter().filter_map(Value::as_f64).sum();
            let all_int = l.iter().all(|v| matches!(v, Value::Int(_)));
            if name == "sum" {
                if all_int {
                    Value::Int(total as i64)
                } else {
                    Value::Float(total)
                }
            } else if l.is_empty() {
                Value::Null
            } else {
                Value::Float(total / l.len() as f64)
            }
        }
        "abs" | "ceil" | "floor" => {
            arity(1)?;
            let v = eval(0)?;
            let Some(f) = v.as_f64() else {
                return Err(type_error(name, &v, "['number']"));
            };
            match (name, &v) {
                ("abs", Value::Int(i)) => Value::Int(i.abs()),
                ("abs", _) => Value::Float(f.abs()),
                ("ceil", _) => number(f.ceil()),
                _ => number(f.floor()),
            }
        }
        "contains" => {
            arity(2)?;
            let (subject, search_for) = (eval(0)?, eval(1)?);
            match (&subject, &search_for) {
                (Value::Str(s), Value::Str(t)) => Value::Bool(s.contains(t.as_str())),
                (Value::List(l), t) => Value::Bool(l.iter().any(|v| values_equal(v, t))),
                _ => return Err(type_error(name, &subject, "['array', 'string']")),
            }
        }
        "starts_with" | "ends_with" => {
            arity(2)?;
            match (eval(0)?, eval(1)?) {
                (Value::Str(s), Value::Str(t)) => Value::Bool(if name == "starts_with" {
                    s.starts_with(&t)
                } else {
                    s.ends_with(&t)
                }),
                (other, _) => return Err(type_error(name, &other, "['string']")),
            }
        }
        "join" => {
            arity(2)?;
            match (eval(0)?, eval(1)?) {
                (Value::Str(glue), Value::List(items)) => {
                    let parts: Option<Vec<&str>> = items.iter().map(Value::as_str).collect();
                    match parts {
                        Some(parts) => Value::Str(parts.join(&glue)),
                        None => {
                            return Err(type_error(
                                name,
                                &Value::List(items.clone()),
                                "['array-string']",
                            ))
                        }
                    }
                }
                (other, _) => return Err(type_error(name, &other, "['string']")),
            }
        }
        "reverse" => {
            arity(1)?;
            match eval(0)? {
                Value::Str(s) => Value::Str(s.chars().rev().collect()),
                Value::List(mut l) => {
                    l.reverse();
                    Value::List(l)
                }
                other => return Err(type_error(name, &other, "['array', 'string']")),
            }
        }
        "to_string" => {
            arity(1)?;
            match eval(0)? {
                Value::Str(s) => Value::Str(s),
                other => Value::Str(
                    to_json_compact(&other)
                        .replace(", ", ",")
                        .replace(": ", ":"),
                ),
            }
        }
        "to_number" => {
            arity(1)?;
            match eval(0)? {
                v @ (Value::Int(_) | Value::Float(_)) => v,
                Value::Str(s) => s
                    .parse::<i64>()
                    .map(Value::Int)
                    .or_else(|_| s.parse::<f64>().map(Value::Float))
                    .unwrap_or(Value::Null),
                _ => Value::Null,
            }
        }
        "to_array" => {
            arity(1)?;
            match eval(0)? {
                l @ Value::List(_) => l,
                other => Value::List(vec![other]),
            }
        }
        "type" => {
            arity(1)?;
            Value::Str(type_name(&eval(0)?).to_owned())
        }
        "not_null" => {
            for i in 0..args.len() {
                let v = eval(i)?;
                if v != Value::Null {
                    return Ok(v);
                }
            }
            Value::Null
        }
        "map" => {
            arity(2)?;
            let key = expref(0)?;
            let Value::List(items) = eval(1)? else {
                return Err(type_error(name, &eval(1)?, "['array']"));
            };
            Value::List(
                items
                    .iter()
                    .map(|i| search(key, i))
                    .collect::<Result<_, _>>()?,
            )
        }
        "merge" => {
            let mut out = Value::Map(Vec::new());
            for i in 0..args.len() {
                match eval(i)? {
                    Value::Map(pairs) => {
                        for (k, v) in pairs {
                            out.set(&k, v);
                        }
                    }
                    other => return Err(type_error(name, &other, "['object']")),
                }
            }
            out
        }
        other => return Err(format!("Unknown function: {other}()")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::value::parse_json;

    fn q(expr: &str, doc: &str) -> String {
        let node = compile(expr).unwrap();
        to_json_compact(&search(&node, &parse_json(doc).unwrap()).unwrap())
    }

    #[test]
    fn spec_examples() {
        let doc = r#"{"StreamInfoList": [{"StreamName": "b", "Size": 2, "Tags": {"k": "v"}}, {"StreamName": "a", "Size": 10}], "NextToken": null}"#;
        assert_eq!(q("StreamInfoList[].StreamName", doc), r#"["b", "a"]"#);
        assert_eq!(q("StreamInfoList[*].StreamName", doc), r#"["b", "a"]"#);
        assert_eq!(
            q("StreamInfoList[0]", doc),
            r#"{"StreamName": "b", "Size": 2, "Tags": {"k": "v"}}"#
        );
        assert_eq!(q("StreamInfoList[-1].StreamName", doc), r#""a""#);
        assert_eq!(q("StreamInfoList[?Size > `5`].StreamName", doc), r#"["a"]"#);
        assert_eq!(q("StreamInfoList[?StreamName=='b'] | [0].Size", doc), "2");
        assert_eq!(
            q("StreamInfoList[].{N: StreamName, S: Size}", doc),
            r#"[{"N": "b", "S": 2}, {"N": "a", "S": 10}]"#
        );
        assert_eq!(q("length(StreamInfoList)", doc), "2");
        assert_eq!(
            q("sort_by(StreamInfoList, &StreamName)[].StreamName", doc),
            r#"["a", "b"]"#
        );
        assert_eq!(q("max_by(StreamInfoList, &Size).StreamName", doc), r#""a""#);
        assert_eq!(q("StreamInfoList[0].Tags.*", doc), r#"["v"]"#);
        assert_eq!(
            q("[StreamInfoList[0].StreamName, NextToken]", doc),
            r#"["b", null]"#
        );
        assert_eq!(q("StreamInfoList[:1].StreamName", doc), r#"["b"]"#);
        assert_eq!(q("StreamInfoList[::-1].StreamName", doc), r#"["a", "b"]"#);
        assert_eq!(
            q("join(', ', StreamInfoList[].StreamName)", doc),
            r#""b, a""#
        );
        assert_eq!(q("missing || 'dflt'", doc), r#""dflt""#);
        assert_eq!(q("!NextToken", doc), "true");
        assert_eq!(
            q(
                "StreamInfoList[?contains(StreamName, 'a')].Size | sum(@)",
                doc
            ),
            "10"
        );
        assert!(compile("StreamInfoList[").is_err());
    }

    /// `((((…a` and `!!!!…a` 100 000 deep overflowed the stack in the parser, `a.a.a…` or `a || a || …`
    /// 3 000 long in the evaluator, and (found by the fuzz target) a 30 000-long chain when dropped: each
    /// aborted the CLI. jmespath.py reports Python's recursion limit for the nested forms and takes a
    /// subexpression chain of any length.
    #[test]
    fn deep_expressions_are_errors_or_evaluated_not_stack_overflows() {
        // On a stack the size of the CLI's main thread (8 MiB): unoptimised, 400 levels take more than a test
        // thread's 2 MiB.
        std::thread::Builder::new()
            .stack_size(8 << 20)
            .spawn(deep_expressions)
            .unwrap()
            .join()
            .unwrap();
    }

    fn deep_expressions() {
        for deep in [
            format!("{}a", "(".repeat(100_000)),
            format!("{}a", "!".repeat(100_000)),
            format!("{}a", "[".repeat(100_000)),
            format!("a{}", "[?a".repeat(100_000)),
        ] {
            assert_eq!(compile(&deep).unwrap_err(), TOO_DEEP, "{}", &deep[..10]);
        }
        let doc = parse_json(r#"{"a": {"a": {"a": 1}}}"#).unwrap();
        let chain = vec!["a"; 20_000].join(".");
        assert_eq!(search(&compile(&chain).unwrap(), &doc), Ok(Value::Null));
        let pipes = vec!["a"; 20_000].join(" | ");
        assert_eq!(search(&compile(&pipes).unwrap(), &doc), Ok(Value::Null));
        assert_eq!(q(&["a"; 3].join("."), r#"{"a": {"a": {"a": 1}}}"#), "1");
        let ors = vec!["a"; 20_000].join(" || ");
        assert_eq!(
            search(&compile(&ors).unwrap(), &doc),
            Err(TOO_DEEP.to_owned())
        );
        // Dropping a chain does not recurse either: 300 000 levels are ~30 MiB of drop frames unoptimised.
        drop(compile(&vec!["a"; 300_000].join(".")).unwrap());
        drop(compile(&vec!["a"; 300_000].join(" || ")).unwrap());
        // The evaluator's depth count goes back to zero after an error.
        assert_eq!(q("a.a.a", r#"{"a": {"a": {"a": 2}}}"#), "2");
        let nested = format!(
            "{}a{}",
            "(".repeat(MAX_DEPTH - 1),
            ")".repeat(MAX_DEPTH - 1)
        );
        assert_eq!(
            search(&compile(&nested).unwrap(), &doc),
            Ok(doc.get("a").cloned().unwrap())
        );
    }
}
