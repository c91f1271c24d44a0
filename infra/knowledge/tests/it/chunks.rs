//! Chunk boundaries and symbols per language, as snapshots (`UPDATE_EXPECT=1` to refresh; review the
//! diff like code).

use std::fmt::Write;

use cadre_knowledge::outline;
use expect_test::{expect, Expect};

/// Renders the outline: one line per chunk (`kind symbol lines [context]`), then per definition.
fn check(path: &str, text: &str, expect: Expect) {
    let o = outline(path, text.as_bytes());
    let mut out = String::new();
    if let Some(reason) = &o.lexical {
        let _ = writeln!(out, "lexical only: {reason}");
    }
    for c in &o.chunks {
        let symbol = c.symbol.as_deref().unwrap_or("-");
        let _ = write!(out, "chunk {:?} {symbol} {}-{}", c.kind, c.start_line, c.end_line);
        if let Some(context) = &c.context {
            let _ = write!(out, " [{}]", context.replace('\n', " / "));
        }
        out.push('\n');
    }
    for d in &o.definitions {
        let container = d.container.as_deref().map(|c| format!(" in {c}")).unwrap_or_default();
        let _ = writeln!(
            out,
            "def {:?} {}{container} {}-{}: {}",
            d.kind, d.name, d.line, d.end_line, d.signature
        );
    }
    expect.assert_eq(&out);
}

#[test]
fn rust_items_impl_blocks_and_doc_comments() {
    check(
        "src/lib.rs",
        r#"use std::fmt;

/// A point.
#[derive(Debug)]
pub struct Point {
    x: i32,
}

impl fmt::Display for Point {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.x)
    }
}

const ORIGIN: i32 = 0;

pub trait Shape {
    fn area(&self) -> f64;
}

pub fn distance(a: &Point, b: &Point) -> i32 {
    (a.x - b.x).abs()
}
"#,
        expect![[r#"
            chunk Other - 1-1
            chunk Type Point 3-7
            chunk Container Point 9-13
            chunk Other - 15-15
            chunk Type Shape 17-19
            chunk Function distance 21-23
            def Struct Point 5-7: pub struct Point
            def Method fmt in Point 10-12: fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result
            def Constant ORIGIN 15-15: const ORIGIN: i32 = 0;
            def Trait Shape 17-19: pub trait Shape
            def Method area in Shape 18-18: fn area(&self) -> f64;
            def Function distance 21-23: pub fn distance(a: &Point, b: &Point) -> i32
        "#]],
    );
}

#[test]
fn python_classes_methods_and_decorators() {
    check(
        "app/server.py",
        r#"import os

# Loads the settings.
@cache
def load(path):
    return open(path).read()

class Server:
    """Serves."""

    def __init__(self, port):
        self.port = port

    def start(self):
        return load(os.environ["CFG"])
"#,
        expect![[r#"
            chunk Other - 1-1
            chunk Function load 3-6
            chunk Type Server 8-15
            def Function load 5-6: def load(path):
            def Struct Server 8-15: class Server:
            def Method __init__ in Server 11-12: def __init__(self, port):
            def Method start in Server 14-15: def start(self):
        "#]],
    );
}

#[test]
fn typescript_interfaces_classes_and_arrow_functions() {
    check(
        "web/shapes.ts",
        r#"import { log } from "./log";

export interface Shape {
  area(): number;
}

export class Circle implements Shape {
  constructor(private r: number) {}
  area(): number {
    return Math.PI * this.r ** 2;
  }
}

export const makeCircle = (r: number): Circle => new Circle(r);

type Id = string;
"#,
        expect![[r#"
            chunk Other - 1-1
            chunk Type Shape 3-5
            chunk Type Circle 7-12
            chunk Function makeCircle 14-14
            chunk Other - 16-16
            def Trait Shape 3-5: interface Shape
            def Struct Circle 7-12: class Circle implements Shape
            def Method constructor in Circle 8-8: constructor(private r: number)
            def Method area in Circle 9-11: area(): number
            def Function makeCircle 14-14: const makeCircle = (r: number): Circle => new Circle(r);
            def TypeAlias Id 16-16: type Id = string;
        "#]],
    );
}

#[test]
fn javascript_functions() {
    check(
        "web/util.js",
        r#"function debounce(fn, ms) {
  let t;
  return (...args) => { clearTimeout(t); t = setTimeout(() => fn(...args), ms); };
}

const throttle = function (fn) { return fn; };
module.exports = { debounce, throttle };
"#,
        expect![[r#"
            chunk Function debounce 1-4
            chunk Function throttle 6-6
            chunk Other - 7-7
            def Function debounce 1-4: function debounce(fn, ms)
            def Function throttle 6-6: const throttle = function (fn)
        "#]],
    );
}

#[test]
fn go_types_and_methods_with_receivers() {
    check(
        "cmd/server.go",
        r#"package main

import "fmt"

// Server serves.
type Server struct {
	Addr string
}

func (s *Server) Start() error {
	fmt.Println(s.Addr)
	return nil
}

func main() {
	s := &Server{Addr: ":80"}
	_ = s.Start()
}
"#,
        expect![[r#"
            chunk Other - 1-3
            chunk Type Server 5-8
            chunk Method Server.Start 10-13
            chunk Function main 15-18
            def Struct Server 6-8: type Server struct
            def Method Start in Server 10-13: func (s *Server) Start() error
            def Function main 15-18: func main()
        "#]],
    );
}

#[test]
fn java_classes_and_members() {
    check(
        "src/Repo.java",
        r#"package demo;

import java.util.List;

/** A repository. */
public class Repo {
    private final List<String> items;

    public Repo(List<String> items) {
        this.items = items;
    }

    public int size() {
        return items.size();
    }
}
"#,
        expect![[r#"
            chunk Other - 1-3
            chunk Type Repo 5-16
            def Struct Repo 6-16: public class Repo
            def Method Repo in Repo 9-11: public Repo(List<String> items)
            def Method size in Repo 13-15: public int size()
        "#]],
    );
}

#[test]
fn c_header_guards_structs_functions_and_macros() {
    check(
        "src/geo.h",
        r#"#ifndef GEO_H
#define GEO_H

/* A point. */
struct point {
    int x;
    int y;
};

typedef struct point point_t;

#define SQUARE(a) ((a) * (a))

static int dot(point_t a, point_t b) {
    return a.x * b.x + a.y * b.y;
}

#endif
"#,
        expect![[r#"
            chunk Other - 1-2
            chunk Type point 4-8
            chunk Other - 10-12
            chunk Function dot 14-16
            chunk Other - 18-18
            def Macro GEO_H 2-2: #define GEO_H
            def Struct point 5-8: struct point
            def TypeAlias point_t 10-10: typedef struct point point_t;
            def Macro SQUARE 12-12: #define SQUARE(a) ((a) * (a))
            def Function dot 14-16: static int dot(point_t a, point_t b)
        "#]],
    );
}

#[test]
fn cpp_namespaces_classes_and_out_of_line_methods() {
    check(
        "src/shape.cpp",
        r#"#include <cmath>

namespace geo {

class Circle {
 public:
  explicit Circle(double r) : r_(r) {}
  double area() const;
 private:
  double r_;
};

double Circle::area() const {
  return M_PI * r_ * r_;
}

}  // namespace geo
"#,
        expect![[r#"
            chunk Other - 1-1
            chunk Container geo 3-17
            def Module geo 3-17: namespace geo
            def Struct Circle in geo 5-11: class Circle
            def Method Circle in geo::Circle 7-7: explicit Circle(double r) : r_(r)
            def Method area in geo::Circle 13-15: double Circle::area() const
        "#]],
    );
}

#[test]
fn a_long_function_is_cut_into_parts_that_keep_its_signature() {
    let mut text = String::from(
        "/// Does many things.\npub fn long_one(x: u32) -> u32 {\n    let mut total = x;\n",
    );
    for i in 0..150 {
        let _ = writeln!(text, "    total += {i};");
    }
    text.push_str("    total\n}\n");
    check(
        "src/long.rs",
        &text,
        expect![[r#"
            chunk Function long_one 1-120
            chunk Function long_one 121-155 [pub fn long_one(x: u32) -> u32]
            def Function long_one 2-155: pub fn long_one(x: u32) -> u32
        "#]],
    );
}

#[test]
fn a_large_impl_block_is_cut_at_its_methods_with_its_header_as_context() {
    let mut text = String::from("struct Big;\n\nimpl Big {\n    const LIMIT: u32 = 3;\n\n");
    for i in 0..6 {
        let _ = writeln!(text, "    pub fn method_{i}(&self) -> u32 {{");
        for j in 0..20 {
            let _ = writeln!(text, "        let v{j} = {j} * {i};");
        }
        text.push_str("        0\n    }\n\n");
    }
    text.push_str("}\n");
    check(
        "src/big.rs",
        &text,
        expect![[r#"
        chunk Type Big 1-1
        chunk Other - 3-4 [impl Big]
        chunk Method Big::method_0 6-28 [impl Big]
        chunk Method Big::method_1 30-52 [impl Big]
        chunk Method Big::method_2 54-76 [impl Big]
        chunk Method Big::method_3 78-100 [impl Big]
        chunk Method Big::method_4 102-124 [impl Big]
        chunk Method Big::method_5 126-148 [impl Big]
        chunk Other - 150-150 [impl Big]
        def Struct Big 1-1: struct Big;
        def Constant LIMIT in Big 4-4: const LIMIT: u32 = 3;
        def Method method_0 in Big 6-28: pub fn method_0(&self) -> u32
        def Method method_1 in Big 30-52: pub fn method_1(&self) -> u32
        def Method method_2 in Big 54-76: pub fn method_2(&self) -> u32
        def Method method_3 in Big 78-100: pub fn method_3(&self) -> u32
        def Method method_4 in Big 102-124: pub fn method_4(&self) -> u32
        def Method method_5 in Big 126-148: pub fn method_5(&self) -> u32
    "#]],
    );
}

#[test]
fn a_syntax_error_falls_back_to_line_windows_and_keeps_the_definitions_it_can() {
    check(
        "src/broken.rs",
        "fn fine() -> u32 {\n    1\n}\n\nfn broken( {\n    let = ;\n}\n",
        expect![[r#"
            lexical only: syntax error at line 5
            chunk Lines - 1-7
            def Function fine 1-3: fn fine() -> u32
            def Function broken 5-7: fn broken(
        "#]],
    );
}

#[test]
fn invalid_utf8_is_cut_into_line_windows() {
    let mut bytes = b"fn latin1() {\n    // caf".to_vec();
    bytes.push(0xe9);
    bytes.extend_from_slice(b"\n}\n");
    let o = outline("src/latin1.rs", &bytes);
    assert_eq!(
        o.lexical.map(|r| r.to_string()).as_deref(),
        Some("not valid UTF-8 (decoded lossily)")
    );
    assert_eq!(o.chunks.len(), 1);
    assert_eq!((o.chunks[0].start_line, o.chunks[0].end_line), (1, 3));
}

#[test]
fn references_skip_definition_names() {
    let o = outline("src/a.rs", b"fn helper() {}\nfn main() {\n    helper();\n    helper();\n}\n");
    let helper = o.references.iter().find(|(n, _)| n == "helper").map(|(_, l)| l.clone());
    assert_eq!(helper, Some(vec![3, 4]), "{:?}", o.references);
    assert!(!o.references.iter().any(|(n, _)| n == "main"));
}
