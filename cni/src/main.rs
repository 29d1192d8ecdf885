//! `keel-cni`: the CNI plugin executable. Reads the command from `CNI_*` variables and the config from stdin,
//! prints the result or a spec error object on stdout. All logic lives in the library.

use std::io::{Read, Write};

fn main() {
    let mut stdin = Vec::new();
    let env = keel_cni::config::Env::from_process();
    let (out, rc) = match std::io::stdin().read_to_end(&mut stdin) {
        Ok(_) => keel_cni::plugin::main_with(&env, &stdin),
        Err(e) => {
            let err =
                keel_cni::spec::CniError::new(keel_cni::spec::code::IO_FAILURE, "cannot read the config on stdin")
                    .details(e.to_string());
            (err.to_json(keel_cni::spec::LATEST).to_string(), 1)
        }
    };
    let mut so = std::io::stdout().lock();
    // Nothing better to do if stdout is gone: the exit code still tells the runtime.
    let _ = so.write_all(out.as_bytes()).and_then(|_| so.flush());
    std::process::exit(rc);
}
