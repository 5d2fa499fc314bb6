//! What the Debian packages of neosens ship besides the binaries, generated from the code itself
//! so that it can never disagree with the binaries: man pages and bash/zsh/fish completions from
//! the clap definitions (`neosens_central::cli::Cli`, `neosens_edge::cli::Cli`), the default
//! configuration file from the same code as the `configfile` subcommand, and the systemd unit
//! adapted from `systemd/*.service` to a package's paths and user.
//!
//! They are generated at packaging time (`scripts/package-deb`), not embedded in the binaries: a
//! gateway binary stays within its 4 MB budget, and a man page belongs in `/usr/share/man`.
//!
//! Layout written under `<out>/<package>/`:
//!
//! ```text
//! man/<bin>.1, man/<bin>-<subcommand>.1
//! completions/bash/<bin>   completions/zsh/_<bin>   completions/fish/<bin>.fish
//! <short>.toml             (the conffile /etc/neosens/<short>.toml)
//! <bin>.service            (the unit, as cargo-deb's `unit-scripts` expects it)
//! ```

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use clap::{CommandFactory, Parser};
use clap_complete::Shell;

/// The two packaged programs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Package {
    /// `neosens-central`: the registry service.
    Central,
    /// `neosens-edge`: the gateway agent.
    Edge,
}

impl Package {
    /// Every package, in the order they are generated.
    pub const ALL: [Package; 2] = [Package::Central, Package::Edge];

    /// The Debian package name, which is also the binary's and the unit's name.
    pub fn name(self) -> &'static str {
        match self {
            Package::Central => "neosens-central",
            Package::Edge => "neosens-edge",
        }
    }

    /// The short name of the configuration file in `/etc/neosens`.
    pub fn short(self) -> &'static str {
        match self {
            Package::Central => "central",
            Package::Edge => "edge",
        }
    }

    /// Where the package keeps its data (the unit's `StateDirectory`).
    pub fn data_dir(self) -> String {
        format!("/var/lib/{}", self.name())
    }

    /// The clap definition of the binary.
    pub fn command(self) -> clap::Command {
        match self {
            Package::Central => neosens_central::cli::Cli::command(),
            Package::Edge => neosens_edge::cli::Cli::command(),
        }
    }

    /// The unit of `systemd/`, as written for a manual installation (`/usr/local/bin`, dynamic
    /// user). Compiled in, so the generator needs no path to the repository at run time.
    fn source_unit(self) -> &'static str {
        match self {
            Package::Central => include_str!("../../systemd/neosens-central.service"),
            Package::Edge => include_str!("../../systemd/neosens-edge.service"),
        }
    }

    /// The default configuration file: what `<bin> configfile --data-dir <data dir>` prints,
    /// produced by the same functions (parse the command line, load, render the template).
    pub fn default_config(self) -> anyhow::Result<String> {
        let dir = self.data_dir();
        let args = [self.name(), "configfile", "--data-dir", dir.as_str()];
        Ok(match self {
            Package::Central => {
                let cli = neosens_central::cli::Cli::try_parse_from(args)?;
                neosens_central::config::template(&neosens_central::cli::load_config(&cli)?)
            }
            Package::Edge => {
                let cli = neosens_edge::cli::Cli::try_parse_from(args)?;
                neosens_edge::config::template(&neosens_edge::cli::load_config(&cli)?)
            }
        })
    }

    /// The systemd unit of the package, derived from `systemd/<bin>.service`.
    pub fn unit(self) -> anyhow::Result<String> {
        package_unit(self, self.source_unit())
    }
}

/// The system user both packages run as (created by their `postinst`).
pub const USER: &str = "neosens";

/// Adapts a unit of `systemd/` to the package: the binary in `/usr/bin`, the system user
/// [`USER`] instead of a dynamic one (so files in the data directory keep a stable owner an
/// operator can use, e.g. `runuser -u neosens -- neosens-edge enroll`), the data directory
/// given by the configuration file rather than by the environment (one place to change it),
/// the man page in `Documentation=`. The edge agent only starts once it is enrolled: before
/// that it has nothing to do and would restart every few seconds.
///
/// Fails when a line it rewrites is missing, so a change in `systemd/` cannot silently produce
/// a unit that runs `/usr/local/bin` or a dynamic user.
pub fn package_unit(package: Package, source: &str) -> anyhow::Result<String> {
    let bin = package.name();
    let exec = format!("ExecStart=/usr/local/bin/{bin} ");
    let data_env = match package {
        Package::Central => "Environment=NEOSENS_DATA_DIR=",
        Package::Edge => "Environment=NEOSENS_EDGE_DATA_DIR=",
    };
    let (mut exec_seen, mut user_seen, mut env_seen, mut doc_seen) = (false, false, false, false);
    let mut out = String::with_capacity(source.len() + 256);
    for line in source.lines() {
        if let Some(rest) = line.strip_prefix(&exec) {
            exec_seen = true;
            out.push_str(&format!("ExecStart=/usr/bin/{bin} {rest}\n"));
        } else if line == "DynamicUser=yes" {
            user_seen = true;
            out.push_str(&format!("User={USER}\nGroup={USER}\n"));
        } else if line.starts_with(data_env) {
            // The data directory is in /etc/neosens/<short>.toml (see `default_config`).
            env_seen = true;
        } else if line.starts_with("# A user of its own, created by systemd") {
            out.push_str(&format!(
                "# The system user {USER} (created by the package); data in {} (kept across runs).\n",
                package.data_dir()
            ));
        } else if let Some(urls) = line.strip_prefix("Documentation=") {
            doc_seen = true;
            out.push_str(&format!("Documentation=man:{bin}(1) {urls}\n"));
            if package == Package::Edge {
                out.push_str(&format!(
                    "# Nothing to do before `{bin} enroll` wrote the gateway's credentials.\n\
                     ConditionPathExists={}/gateway.json\n",
                    package.data_dir()
                ));
            }
        } else {
            out.push_str(line);
            out.push('\n');
        }
    }
    for (seen, what) in [
        (exec_seen, exec.as_str()),
        (user_seen, "DynamicUser=yes"),
        (env_seen, data_env),
        (doc_seen, "Documentation="),
    ] {
        anyhow::ensure!(
            seen,
            "systemd/{bin}.service has no line starting with `{what}`: update neosens-gen-dist"
        );
    }
    Ok(out)
}

/// Writes everything of `package` under `out/<package>/` and returns the files written.
pub fn generate(package: Package, out: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let dir = out.join(package.name());
    // A stale page of a removed subcommand must not end up in a package.
    if dir.exists() {
        fs::remove_dir_all(&dir).with_context(|| format!("removing {}", dir.display()))?;
    }
    let mut written = Vec::new();
    let bin = package.name();

    // Man pages: the program's page, and one per subcommand (`neosens-central-import-legacy`).
    let man = dir.join("man");
    fs::create_dir_all(&man)?;
    clap_mangen::generate_to(package.command(), &man).with_context(|| format!("man pages of {bin}"))?;
    let mut pages: Vec<PathBuf> =
        fs::read_dir(&man)?.map(|e| e.map(|e| e.path())).collect::<Result<_, _>>()?;
    pages.sort();
    written.extend(pages);

    // Completions, under the names each shell looks for in its vendor directory.
    for (shell, name) in [
        (Shell::Bash, bin.to_string()),
        (Shell::Zsh, format!("_{bin}")),
        (Shell::Fish, format!("{bin}.fish")),
    ] {
        let shell_dir = dir.join("completions").join(shell.to_string());
        fs::create_dir_all(&shell_dir)?;
        let path = shell_dir.join(name);
        let mut buf = Vec::new();
        clap_complete::generate(shell, &mut package.command(), bin, &mut buf);
        fs::write(&path, buf).with_context(|| format!("writing {}", path.display()))?;
        written.push(path);
    }

    let config = dir.join(format!("{}.toml", package.short()));
    fs::write(&config, package.default_config()?)?;
    written.push(config);

    let unit = dir.join(format!("{bin}.service"));
    fs::write(&unit, package.unit()?)?;
    written.push(unit);
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packaged_units_use_the_package_paths_and_user() {
        for package in Package::ALL {
            let unit = package.unit().unwrap();
            let bin = package.name();
            assert!(unit.contains(&format!("\nExecStart=/usr/bin/{bin} --config /etc/neosens/")), "{unit}");
            assert!(unit.contains("\nUser=neosens\nGroup=neosens\n"), "{unit}");
            assert!(!unit.contains("/usr/local/bin") && !unit.contains("DynamicUser"), "{unit}");
            assert!(!unit.contains("DATA_DIR="), "the data directory comes from the config file: {unit}");
            assert!(unit.contains(&format!("StateDirectory={bin}\n")), "{unit}");
            assert!(unit.contains(&format!("Documentation=man:{bin}(1) https://")), "{unit}");
        }
        assert!(
            Package::Edge
                .unit()
                .unwrap()
                .contains("\nConditionPathExists=/var/lib/neosens-edge/gateway.json\n")
        );
    }

    #[test]
    fn a_unit_without_the_expected_lines_is_refused() {
        let err = package_unit(Package::Central, "[Service]\nExecStart=/opt/x\n").unwrap_err();
        assert!(err.to_string().contains("ExecStart=/usr/local/bin/neosens-central"), "{err}");
    }

    #[test]
    fn default_configs_point_at_the_package_data_dir_and_parse_back() {
        let central = Package::Central.default_config().unwrap();
        assert!(central.contains("data_dir = \"/var/lib/neosens-central\""), "{central}");
        let parsed = neosens_central::Config::from_toml(&central).unwrap();
        assert_eq!(parsed.storage.data_dir, PathBuf::from("/var/lib/neosens-central"));

        let edge = Package::Edge.default_config().unwrap();
        assert!(edge.contains("data_dir = \"/var/lib/neosens-edge\""), "{edge}");
    }

    #[test]
    fn generates_man_pages_completions_config_and_unit() {
        let out = tempfile::tempdir().unwrap();
        for package in Package::ALL {
            let bin = package.name();
            let files = generate(package, out.path()).unwrap();
            let dir = out.path().join(bin);
            let page = fs::read_to_string(dir.join(format!("man/{bin}.1"))).unwrap();
            assert!(page.starts_with(".ie"), "roff: {page}");
            assert!(page.contains("configfile"), "subcommands listed: {page}");
            assert!(dir.join(format!("man/{bin}-configfile.1")).exists());
            let bash = fs::read_to_string(dir.join(format!("completions/bash/{bin}"))).unwrap();
            assert!(bash.contains("--config") && bash.contains("complete -F"), "{bash}");
            let zsh = fs::read_to_string(dir.join(format!("completions/zsh/_{bin}"))).unwrap();
            assert!(zsh.starts_with(&format!("#compdef {bin}")), "{zsh}");
            let fish = fs::read_to_string(dir.join(format!("completions/fish/{bin}.fish"))).unwrap();
            assert!(fish.contains(&format!("complete -c {bin}")), "{fish}");
            assert!(files.contains(&dir.join(format!("{}.toml", package.short()))));
            assert!(files.contains(&dir.join(format!("{bin}.service"))));
        }
        // Pages of a subcommand that no longer exists do not survive a second run.
        let stale = out.path().join("neosens-edge/man/neosens-edge-gone.1");
        fs::write(&stale, "x").unwrap();
        generate(Package::Edge, out.path()).unwrap();
        assert!(!stale.exists());
    }
}
