//! `gridiron-standin-driver`: a **stand-in driver**, a fake chromedriver for
//! benchmarks of Gridiron's scheduling.
//!
//! It mimics chromedriver just enough for Gridiron's local provisioner to
//! take it for one: `--version` prints a ChromeDriver version line, and
//! otherwise it listens on `127.0.0.1` (`--port=N`, `0` for any free port),
//! prints chromedriver's "started successfully on port N." line and serves
//! WebDriver over HTTP/1.1 with keep-alive. It starts no browser and no
//! other process: `POST /session` answers at once with a made-up session,
//! every other session command answers `{"value":null}`.
//!
//! If the environment variable `STANDIN_LOG` names a file, each
//! `POST /session` appends one line `<unix time in ns> <bench:seq>` to it,
//! where `bench:seq` is that capability's integer value from the request's
//! `alwaysMatch` or `firstMatch` (or `-1`). The line is written with one
//! `write` on a file opened for appending, so the lines of concurrent
//! stand-in processes do not interleave.

use gridiron_standin_driver::{answer, VERSION};
use std::io::{self, BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::process::ExitCode;

/// Largest request head or body accepted, in bytes.
const MAX_BYTES: usize = 64 * 1024 * 1024;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "--version" || a == "-v") {
        println!("ChromeDriver {VERSION} (gridiron stand-in driver)");
        return ExitCode::SUCCESS;
    }
    let port = match port_arg(&args) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("gridiron-standin-driver: {e}");
            return ExitCode::from(2);
        }
    };
    let listener = match TcpListener::bind(("127.0.0.1", port)) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("gridiron-standin-driver: cannot listen on 127.0.0.1:{port}: {e}");
            return ExitCode::FAILURE;
        }
    };
    let port = listener.local_addr().map(|a| a.port()).unwrap_or(port);
    {
        let mut out = io::stdout().lock();
        let _ = writeln!(
            out,
            "Starting ChromeDriver {VERSION} (gridiron stand-in driver) on port {port}\n\
             Only local connections are allowed.\n\
             ChromeDriver was started successfully on port {port}."
        );
        let _ = out.flush();
    }
    for stream in listener.incoming().flatten() {
        std::thread::spawn(move || {
            let _ = serve(stream);
        });
    }
    ExitCode::SUCCESS
}

/// The port from `--port=N` or `--port N`; 0 (any free port) if not given.
fn port_arg(args: &[String]) -> Result<u16, String> {
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let value = if let Some(v) = a.strip_prefix("--port=") {
            v
        } else if a == "--port" {
            it.next().map(String::as_str).unwrap_or("")
        } else {
            continue;
        };
        return value
            .parse()
            .map_err(|_| format!("bad --port value {value:?}"));
    }
    Ok(0)
}

/// One parsed HTTP request.
struct Request {
    method: String,
    path: String,
    body: Vec<u8>,
    /// The client asked to close the connection after this request.
    close: bool,
}

/// Serves requests on one connection until the client closes it.
fn serve(stream: TcpStream) -> io::Result<()> {
    stream.set_nodelay(true)?;
    let mut writer = stream.try_clone()?;
    let mut reader = BufReader::new(stream);
    while let Some(req) = read_request(&mut reader)? {
        let (status, body) = answer(&req.method, &req.path, &req.body);
        let reason = match status {
            200 => "OK",
            400 => "Bad Request",
            404 => "Not Found",
            _ => "Internal Server Error",
        };
        let body = body.to_string();
        let head = format!(
            "HTTP/1.1 {status} {reason}\r\n\
             Content-Type: application/json; charset=utf-8\r\n\
             Cache-Control: no-cache\r\n\
             Content-Length: {}\r\n\
             {}\r\n",
            body.len(),
            if req.close {
                "Connection: close\r\n"
            } else {
                ""
            },
        );
        writer.write_all((head + &body).as_bytes())?;
        if req.close {
            break;
        }
    }
    Ok(())
}

/// Reads one request; `None` when the client closed the connection between requests.
fn read_request(r: &mut impl BufRead) -> io::Result<Option<Request>> {
    let mut line = String::new();
    // Tolerate empty lines before a request line (RFC 9112, 2.2).
    loop {
        line.clear();
        if r.read_line(&mut line)? == 0 {
            return Ok(None);
        }
        if !line.trim().is_empty() {
            break;
        }
    }
    let mut parts = line.split_whitespace();
    let (method, target, version) = match (parts.next(), parts.next(), parts.next()) {
        (Some(m), Some(t), Some(v)) => (m.to_string(), t.to_string(), v.to_string()),
        _ => return Err(bad("malformed request line")),
    };
    let path = target.split('?').next().unwrap_or("").to_string();
    let mut close = version == "HTTP/1.0";
    let mut length = 0usize;
    let mut chunked = false;
    let mut head = line.len();
    loop {
        line.clear();
        if r.read_line(&mut line)? == 0 {
            return Err(bad("connection closed in the request head"));
        }
        head += line.len();
        if head > MAX_BYTES {
            return Err(bad("request head too large"));
        }
        let l = line.trim_end();
        if l.is_empty() {
            break;
        }
        let Some((name, value)) = l.split_once(':') else {
            continue;
        };
        let value = value.trim();
        match name.trim().to_ascii_lowercase().as_str() {
            "content-length" => {
                length = value.parse().map_err(|_| bad("bad Content-Length"))?;
            }
            "transfer-encoding" => chunked = value.to_ascii_lowercase().contains("chunked"),
            "connection" => {
                let v = value.to_ascii_lowercase();
                if v.contains("close") {
                    close = true;
                } else if v.contains("keep-alive") {
                    close = false;
                }
            }
            _ => {}
        }
    }
    let body = if chunked {
        read_chunked(r)?
    } else {
        if length > MAX_BYTES {
            return Err(bad("request body too large"));
        }
        let mut body = vec![0; length];
        r.read_exact(&mut body)?;
        body
    };
    Ok(Some(Request {
        method,
        path,
        body,
        close,
    }))
}

/// Reads a `Transfer-Encoding: chunked` body and its trailers.
fn read_chunked(r: &mut impl BufRead) -> io::Result<Vec<u8>> {
    let mut body = Vec::new();
    let mut line = String::new();
    loop {
        line.clear();
        r.read_line(&mut line)?;
        let size = line.trim().split(';').next().unwrap_or("");
        let size = usize::from_str_radix(size, 16).map_err(|_| bad("bad chunk size"))?;
        if size == 0 {
            // Trailers, up to the empty line.
            loop {
                line.clear();
                if r.read_line(&mut line)? == 0 || line.trim().is_empty() {
                    return Ok(body);
                }
            }
        }
        if body.len() + size > MAX_BYTES {
            return Err(bad("request body too large"));
        }
        let start = body.len();
        body.resize(start + size, 0);
        r.read_exact(&mut body[start..])?;
        line.clear();
        r.read_line(&mut line)?;
    }
}

fn bad(msg: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_are_read_in_both_spellings() {
        let s = |v: &[&str]| v.iter().map(|a| a.to_string()).collect::<Vec<_>>();
        assert_eq!(port_arg(&s(&["--port=0", "--log-path=/x"])), Ok(0));
        assert_eq!(port_arg(&s(&["--port", "9515"])), Ok(9515));
        assert_eq!(port_arg(&s(&[])), Ok(0));
        assert!(port_arg(&s(&["--port=x"])).is_err());
    }

    #[test]
    fn requests_are_parsed_with_keep_alive_and_chunks() {
        let raw = b"POST /session HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}\
GET /status HTTP/1.1\r\nConnection: close\r\n\r\n\
POST /session/abc/url HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\n{\"a\r\n4\r\n\":1}\r\n0\r\n\r\n";
        let mut r = BufReader::new(&raw[..]);
        let a = read_request(&mut r).unwrap().unwrap();
        assert_eq!(
            (a.method.as_str(), a.path.as_str(), a.close),
            ("POST", "/session", false)
        );
        assert_eq!(a.body, b"{}");
        let b = read_request(&mut r).unwrap().unwrap();
        assert_eq!((b.path.as_str(), b.close), ("/status", true));
        let c = read_request(&mut r).unwrap().unwrap();
        assert_eq!(c.body, b"{\"a\":1}");
        assert!(read_request(&mut r).unwrap().is_none());
    }
}
