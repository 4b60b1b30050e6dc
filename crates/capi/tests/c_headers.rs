//! The headers compile on their own terms: every one of them included, with
//! <signal.h> before and after, as strict C11, GNU C11 and C++, with every
//! warning an error; `tests/c/headers_checks.h` checks at compile time that
//! the documented fields, constants, macros and function types exist.

mod common;

use common::{compile_only, have_compiler, work_dir};

const STRICT: &[&str] = &["-Wall", "-Wextra", "-Werror", "-pedantic"];

fn flags(extra: &[&'static str]) -> Vec<&'static str> {
    STRICT.iter().chain(extra).copied().collect()
}

#[test]
fn headers_gnu11() {
    let dir = work_dir("headers_gnu11");
    for source in ["headers_first.c", "headers_last.c"] {
        compile_only(dir.path(), "cc", source, &flags(&["-std=gnu11"]));
    }
}

/// Strict ISO C: the headers, included first, bring in what they use
/// (struct sigevent, union sigval, pthreads) on their own.
#[test]
fn headers_c11_included_first() {
    let dir = work_dir("headers_c11_first");
    compile_only(dir.path(), "cc", "headers_first.c", &flags(&["-std=c11"]));
}

/// Strict ISO C with <signal.h> first: the program asks for POSIX itself
/// (strict ISO C's <signal.h> has no struct sigevent otherwise).
#[test]
fn headers_c11_after_signal_h() {
    let dir = work_dir("headers_c11_last");
    compile_only(
        dir.path(),
        "cc",
        "headers_last.c",
        &flags(&["-std=c11", "-D_POSIX_C_SOURCE=200809L"]),
    );
}

#[test]
fn headers_cplusplus() {
    if !have_compiler("c++") {
        eprintln!("no c++ compiler: skipped");
        return;
    }
    let dir = work_dir("headers_cplusplus");
    for source in ["headers_first.c", "headers_last.c"] {
        compile_only(
            dir.path(),
            "c++",
            source,
            &flags(&["-x", "c++", "-std=c++11"]),
        );
    }
}
