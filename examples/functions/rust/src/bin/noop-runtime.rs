//! `noop-runtime`: the cheapest real runtime there is, for measuring a Runtime API
//! server's own cost. It speaks the Runtime API over one keep-alive HTTP/1.1 connection
//! with blocking std I/O: GET next, POST the same bytes back as the response, repeat.
//! No async runtime, no HTTP library: whatever time an invoke takes is the server's.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::ExitCode;

/// Reads one HTTP response: returns (request id header, body).
fn read_response(r: &mut BufReader<TcpStream>) -> std::io::Result<(Option<String>, Vec<u8>)> {
    let mut line = String::new();
    let mut length = 0usize;
    let mut request_id = None;
    r.read_line(&mut line)?;
    if !line.starts_with("HTTP/1.1 2") {
        return Err(std::io::Error::other(format!("unexpected status line {line:?}")));
    }
    loop {
        line.clear();
        if r.read_line(&mut line)? == 0 {
            return Err(std::io::Error::other("connection closed in the headers"));
        }
        let l = line.trim_end();
        if l.is_empty() {
            break;
        }
        if let Some((k, v)) = l.split_once(':') {
            if k.eq_ignore_ascii_case("content-length") {
                length = v.trim().parse().map_err(|_| std::io::Error::other("bad content-length"))?;
            } else if k.eq_ignore_ascii_case("lambda-runtime-aws-request-id") {
                request_id = Some(v.trim().to_owned());
            }
        }
    }
    let mut body = vec![0u8; length];
    r.read_exact(&mut body)?;
    Ok((request_id, body))
}

fn run(api: &str) -> std::io::Result<()> {
    let stream = TcpStream::connect(api)?;
    stream.set_nodelay(true)?;
    let mut w = stream.try_clone()?;
    let mut r = BufReader::new(stream);
    loop {
        write!(w, "GET /2018-06-01/runtime/invocation/next HTTP/1.1\r\nHost: {api}\r\n\r\n")?;
        let (id, event) = read_response(&mut r)?;
        let id = id.ok_or_else(|| std::io::Error::other("no request id"))?;
        write!(
            w,
            "POST /2018-06-01/runtime/invocation/{id}/response HTTP/1.1\r\nHost: {api}\r\nContent-Length: {}\r\n\r\n",
            event.len()
        )?;
        w.write_all(&event)?;
        read_response(&mut r)?;
    }
}

fn main() -> ExitCode {
    let Ok(api) = std::env::var("AWS_LAMBDA_RUNTIME_API") else {
        eprintln!("noop-runtime: AWS_LAMBDA_RUNTIME_API is not set");
        return ExitCode::from(2);
    };
    match run(&api) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("noop-runtime: {e}");
            ExitCode::from(1)
        }
    }
}
