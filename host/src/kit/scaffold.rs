//! `plugin new`: a ready plugin crate from a template, outside this
//! repository's workspaces, that depends on the SDK by path or by git.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::{Component, Path, PathBuf};

use crate::plugin::World;

/// The operator's checkout this binary was built from; a plugin made next to
/// it (or inside it) depends on its SDK by path.
const BUILD_CHECKOUT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/..");

/// The toolchain file of the checkout: the generated crate pins the same compiler.
const TOOLCHAIN_FILE: &str = include_str!("../../../rust-toolchain.toml");

/// Names a plugin crate cannot have: its own dependencies (cargo refuses a
/// package that depends on a package of its own name) and names cargo reserves.
const RESERVED: &[&str] = &[
    "deployment-generator",
    "portfolio-plugin-sdk",
    "portfolio-api",
    "serde",
    "serde-json",
    "test",
    "core",
    "std",
    "alloc",
    "proc-macro",
    "build",
    "deps",
    "examples",
    "incremental",
];

/// Where the generated crate gets the SDK (and the built-in generator) from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SdkSource {
    /// A checkout of portfolio-operator on this machine (its root directory).
    Path(PathBuf),
    /// A git repository of portfolio-operator, at a revision if given (else its default branch).
    Git {
        /// Clone URL.
        url: String,
        /// Commit, tag or branch to pin; cargo locks the commit in Cargo.lock either way.
        rev: Option<String>,
    },
}

/// What `plugin new` makes.
#[derive(Clone, Debug)]
pub struct NewPlugin {
    /// The plugin's (and crate's) name: a DNS-1123 label that is a valid crate name.
    pub name: String,
    /// Which world it exports.
    pub world: World,
    /// The directory to create (it may exist if empty).
    pub dir: PathBuf,
    /// Where the SDK comes from.
    pub sdk: SdkSource,
}

/// `plugin new` could not make the crate; nothing was left behind.
#[derive(Debug, thiserror::Error)]
pub enum ScaffoldError {
    /// The name cannot be a plugin's or a crate's.
    #[error("{name:?} cannot be a plugin name: {why}")]
    BadName {
        /// The name given.
        name: String,
        /// What is wrong with it.
        why: String,
    },
    /// The target exists and holds something: nothing is overwritten.
    #[error("{} already exists and is not empty; choose another --dir, or empty it", .0.display())]
    NotEmpty(PathBuf),
    /// The target exists and is a file.
    #[error("{} already exists and is not a directory", .0.display())]
    NotADirectory(PathBuf),
    /// The checkout given for the SDK has none.
    #[error(
        "{} is not a portfolio-operator checkout (it has no plugins/sdk/Cargo.toml); pass --sdk-path with one, or --sdk-git",
        .0.display()
    )]
    NoSdk(PathBuf),
    /// Reading or writing failed.
    #[error("{}: {error}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// What the system said.
        error: std::io::Error,
    },
}

/// One file of the crate: its path inside the crate and its content.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct File {
    /// Relative to the crate's directory.
    pub path: PathBuf,
    /// What it holds.
    pub content: String,
}

/// The checkout this binary was built from, when it is still on this machine.
pub fn build_checkout() -> Option<PathBuf> {
    let root = normalize(Path::new(BUILD_CHECKOUT));
    root.join("plugins/sdk/Cargo.toml")
        .is_file()
        .then_some(root)
}

/// Refuse what cannot be both a plugin name (a DNS-1123 label) and a crate
/// name (starts with a letter; not reserved).
pub fn check_name(name: &str) -> Result<(), ScaffoldError> {
    let bad = |why: &str| ScaffoldError::BadName {
        name: name.to_owned(),
        why: why.to_owned(),
    };
    if !crate::plugin::is_dns_label(name) {
        return Err(bad(
            "a plugin name is a DNS-1123 label: lower case letters, digits and '-', at most 63 characters, starting and ending with a letter or digit",
        ));
    }
    if !name.starts_with(|c: char| c.is_ascii_lowercase()) {
        return Err(bad("a crate name starts with a letter"));
    }
    if RESERVED.contains(&name) {
        return Err(bad(
            "it is the name of one of the crate's dependencies or reserved by cargo",
        ));
    }
    Ok(())
}

/// The files of the crate `plugin` describes, without touching the disk
/// (beyond resolving `plugin.dir` against the current directory).
pub fn render(plugin: &NewPlugin) -> Result<Vec<File>, ScaffoldError> {
    check_name(&plugin.name)?;
    let dir = absolute(&plugin.dir)?;
    let dependencies = dependencies(plugin.world, &plugin.sdk, &dir)?;
    let (manifest, lib, case) = match plugin.world {
        World::Generator => (
            include_str!("templates/generator/Cargo.toml.in"),
            include_str!("templates/generator/lib.rs.in"),
            include_str!("templates/generator/case.yaml"),
        ),
        World::MigrationStrategy => (
            include_str!("templates/migration-strategy/Cargo.toml.in"),
            include_str!("templates/migration-strategy/lib.rs.in"),
            include_str!("templates/migration-strategy/case.yaml"),
        ),
    };
    let fill = |template: &str| {
        template
            .replace("{{name}}", &plugin.name)
            .replace("{{crate}}", &plugin.name.replace('-', "_"))
            .replace("{{world}}", plugin.world.as_str())
            .replace("{{dependencies}}", &dependencies)
            .replace("{{channel}}", toolchain_channel())
    };
    let file = |path: &str, template: &str| File {
        path: PathBuf::from(path),
        content: fill(template),
    };
    Ok(vec![
        file("Cargo.toml", manifest),
        file("src/lib.rs", lib),
        file("cases/example/input.yaml", case),
        file("README.md", include_str!("templates/common/README.md.in")),
        file(
            "rust-toolchain.toml",
            include_str!("templates/common/rust-toolchain.toml.in"),
        ),
        file(".gitignore", include_str!("templates/common/gitignore")),
    ])
}

/// Make the crate: refuse a bad name or a directory that holds anything,
/// then write every file, never over an existing one. On failure, what was
/// written is removed again.
pub fn create(plugin: &NewPlugin) -> Result<Vec<File>, ScaffoldError> {
    let files = render(plugin)?;
    let dir = absolute(&plugin.dir)?;
    let io = |path: &Path| {
        let path = path.to_owned();
        move |source| ScaffoldError::Io {
            path,
            error: source,
        }
    };
    let existed = match fs::metadata(&dir) {
        Ok(meta) if !meta.is_dir() => return Err(ScaffoldError::NotADirectory(dir)),
        Ok(_) => {
            if fs::read_dir(&dir).map_err(io(&dir))?.next().is_some() {
                return Err(ScaffoldError::NotEmpty(dir));
            }
            true
        }
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => false,
        Err(error) => return Err(io(&dir)(error)),
    };
    let written = write_all(&dir, &files);
    if let Err(error) = written {
        // Only what this call made goes: the directory was empty or absent.
        if existed {
            if let Ok(entries) = fs::read_dir(&dir) {
                for entry in entries.flatten() {
                    let _ =
                        fs::remove_dir_all(entry.path()).or_else(|_| fs::remove_file(entry.path()));
                }
            }
        } else {
            let _ = fs::remove_dir_all(&dir);
        }
        return Err(error);
    }
    Ok(files)
}

fn write_all(dir: &Path, files: &[File]) -> Result<(), ScaffoldError> {
    for file in files {
        let path = dir.join(&file.path);
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent).map_err(|source| ScaffoldError::Io {
                path: parent.to_owned(),
                error: source,
            })?;
        }
        // create_new: a file that appeared meanwhile is never overwritten.
        let mut out = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(|source| ScaffoldError::Io {
                path: path.clone(),
                error: source,
            })?;
        out.write_all(file.content.as_bytes())
            .map_err(|source| ScaffoldError::Io {
                path,
                error: source,
            })?;
    }
    Ok(())
}

/// The `[dependencies]` lines of the SDK (and what the template reuses).
fn dependencies(world: World, sdk: &SdkSource, dir: &Path) -> Result<String, ScaffoldError> {
    let source = |package_dir: &str| match sdk {
        SdkSource::Path(root) => {
            let root = normalize(root);
            let target = root.join(package_dir);
            // Inside the checkout (examples/), a relative path keeps working in
            // every clone; elsewhere the absolute path says where it points.
            let path = if dir.starts_with(&root) {
                relative(dir, &target)
            } else {
                target
            };
            format!("path = {:?}", path.to_string_lossy())
        }
        SdkSource::Git { url, rev } => match rev {
            Some(rev) => format!("git = {url:?}, rev = {rev:?}"),
            None => format!("git = {url:?}"),
        },
    };
    if let SdkSource::Path(root) = sdk
        && !root.join("plugins/sdk/Cargo.toml").is_file()
    {
        return Err(ScaffoldError::NoSdk(root.clone()));
    }
    let mut lines = vec![
        "# The plugin SDK: the WIT bindings of both worlds, and helpers.".to_owned(),
        format!("portfolio-plugin-sdk = {{ {} }}", source("plugins/sdk")),
    ];
    match world {
        World::Generator => {
            lines.push(
                "# The built-in generator as a library; without its `component` feature its own"
                    .to_owned(),
            );
            lines.push("# exports stay out of this component.".to_owned());
            lines.push(format!(
                "deployment-generator = {{ {}, default-features = false }}",
                source("plugins/deployment-generator")
            ));
        }
        World::MigrationStrategy => {
            lines.push("# The PortfolioApp and DatabaseMigration types.".to_owned());
            lines.push(format!(
                "portfolio-api = {{ {}, default-features = false }}",
                source("api")
            ));
        }
    }
    Ok(lines.join("\n"))
}

/// The `channel` of the checkout's rust-toolchain.toml.
fn toolchain_channel() -> &'static str {
    TOOLCHAIN_FILE
        .lines()
        .filter_map(|line| line.trim().strip_prefix("channel"))
        .filter_map(|rest| rest.trim().strip_prefix('='))
        .map(|value| value.trim().trim_matches('"'))
        .next()
        .unwrap_or("stable")
}

/// `path` made absolute against the current directory and without `.`/`..`.
fn absolute(path: &Path) -> Result<PathBuf, ScaffoldError> {
    let joined = if path.is_absolute() {
        path.to_owned()
    } else {
        std::env::current_dir()
            .map_err(|source| ScaffoldError::Io {
                path: PathBuf::from("."),
                error: source,
            })?
            .join(path)
    };
    Ok(normalize(&joined))
}

/// `path` without `.` and `..` components, resolved lexically (the target
/// directory may not exist yet); symbolic links of the checkout are resolved.
fn normalize(path: &Path) -> PathBuf {
    if let Ok(canonical) = path.canonicalize() {
        return canonical;
    }
    let mut out = PathBuf::new();
    for component in path.components() {
        match component {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    // The longest existing ancestor canonicalised, so both sides of a
    // comparison resolve links the same way.
    let mut existing = out.clone();
    let mut rest = Vec::new();
    while !existing.exists() {
        match existing.file_name() {
            Some(name) => rest.push(name.to_owned()),
            None => break,
        }
        if !existing.pop() {
            break;
        }
    }
    let mut base = existing.canonicalize().unwrap_or(existing);
    for name in rest.into_iter().rev() {
        base.push(name);
    }
    base
}

/// The path from directory `from` to `to` (both absolute and normalised).
fn relative(from: &Path, to: &Path) -> PathBuf {
    let from: Vec<_> = from.components().collect();
    let to: Vec<_> = to.components().collect();
    let common = from.iter().zip(&to).take_while(|(a, b)| a == b).count();
    let mut path = PathBuf::new();
    for _ in common..from.len() {
        path.push("..");
    }
    for component in &to[common..] {
        path.push(component);
    }
    path
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plugin(name: &str, world: World, dir: &Path) -> NewPlugin {
        NewPlugin {
            name: name.to_owned(),
            world,
            dir: dir.to_owned(),
            sdk: SdkSource::Git {
                url: "https://example.test/portfolio-operator.git".to_owned(),
                rev: Some("v0.1.0".to_owned()),
            },
        }
    }

    #[test]
    fn names_that_are_not_plugin_or_crate_names_are_refused() {
        for bad in [
            "",
            "My-Plugin",
            "my_plugin",
            "-plugin",
            "plugin-",
            "1plugin",
            "serde",
            "deployment-generator",
            "test",
            "a.b",
            "../x",
            &"a".repeat(64),
        ] {
            let error = check_name(bad).expect_err(bad);
            assert!(
                error.to_string().contains("cannot be a plugin name"),
                "{error}"
            );
        }
        check_name("team-web").expect("a good name");
        check_name(&"a".repeat(63)).expect("63 characters");
    }

    #[test]
    fn the_crate_is_filled_in_for_its_world_and_source() {
        let dir = std::env::temp_dir().join("kit-render-test/team-web");
        let files = render(&plugin("team-web", World::Generator, &dir)).expect("render");
        let manifest = &files[0];
        assert_eq!(manifest.path, Path::new("Cargo.toml"));
        assert!(manifest.content.contains("name = \"team-web\""));
        assert!(
            manifest.content.contains("\n[workspace]\n"),
            "{}",
            manifest.content
        );
        assert!(manifest.content.contains(
            "deployment-generator = { git = \"https://example.test/portfolio-operator.git\", rev = \"v0.1.0\", default-features = false }"
        ));
        for file in &files {
            assert!(
                !file.content.contains("{{"),
                "{} keeps a placeholder",
                file.path.display()
            );
        }
        let strategy = render(&plugin("team-db", World::MigrationStrategy, &dir)).expect("render");
        assert!(
            strategy[1]
                .content
                .contains("impl MigrationStrategy for Plugin")
        );
        assert!(strategy[0].content.contains("portfolio-api = { git"));
    }

    #[test]
    fn a_path_source_is_relative_inside_the_checkout_and_absolute_outside() {
        let Some(root) = build_checkout() else {
            return;
        };
        let inside = NewPlugin {
            sdk: SdkSource::Path(root.clone()),
            ..plugin(
                "custom-plugin",
                World::Generator,
                &root.join("examples/custom-plugin"),
            )
        };
        let files = render(&inside).expect("render");
        assert!(
            files[0]
                .content
                .contains("portfolio-plugin-sdk = { path = \"../../plugins/sdk\" }"),
            "{}",
            files[0].content
        );
        let outside = NewPlugin {
            dir: PathBuf::from("/nonexistent-kit-test/team-web"),
            ..inside
        };
        let files = render(&outside).expect("render");
        let expected = format!("path = {:?}", root.join("plugins/sdk").to_string_lossy());
        assert!(files[0].content.contains(&expected), "{}", files[0].content);
    }

    #[test]
    fn a_checkout_without_the_sdk_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let bad = NewPlugin {
            sdk: SdkSource::Path(dir.path().to_owned()),
            ..plugin("team-web", World::Generator, &dir.path().join("team-web"))
        };
        let error = render(&bad).expect_err("no SDK there");
        assert!(matches!(error, ScaffoldError::NoSdk(_)), "{error}");
    }

    #[test]
    fn an_existing_directory_that_holds_anything_is_left_alone() {
        let dir = tempfile::tempdir().expect("tempdir");
        let target = dir.path().join("team-web");
        fs::create_dir(&target).expect("mkdir");
        fs::write(target.join("notes.txt"), "mine").expect("write");
        let error = create(&plugin("team-web", World::Generator, &target)).expect_err("not empty");
        assert!(matches!(error, ScaffoldError::NotEmpty(_)), "{error}");
        assert_eq!(
            fs::read_to_string(target.join("notes.txt")).expect("kept"),
            "mine"
        );
        assert_eq!(fs::read_dir(&target).expect("dir").count(), 1);

        let file = dir.path().join("a-file");
        fs::write(&file, "x").expect("write");
        let error = create(&plugin("team-web", World::Generator, &file)).expect_err("a file");
        assert!(matches!(error, ScaffoldError::NotADirectory(_)), "{error}");
    }

    #[test]
    fn an_empty_or_missing_directory_gets_the_crate() {
        let dir = tempfile::tempdir().expect("tempdir");
        let empty = dir.path().join("empty");
        fs::create_dir(&empty).expect("mkdir");
        let files = create(&plugin("team-web", World::Generator, &empty)).expect("create");
        for file in &files {
            assert_eq!(
                fs::read_to_string(empty.join(&file.path)).expect("written"),
                file.content
            );
        }
        let nested = dir.path().join("a/b/team-db");
        create(&plugin("team-db", World::MigrationStrategy, &nested)).expect("create");
        assert!(nested.join("src/lib.rs").is_file());
    }

    /// examples/custom-plugin is `plugin new custom-plugin --world generator`
    /// run in the checkout, its cases and Cargo.lock added: a change of the
    /// templates shows here until the example is made again.
    #[test]
    fn the_committed_example_is_what_plugin_new_makes() {
        let Some(root) = build_checkout() else {
            return;
        };
        let dir = root.join("examples/custom-plugin");
        let example = NewPlugin {
            name: "custom-plugin".to_owned(),
            world: World::Generator,
            dir: dir.clone(),
            sdk: SdkSource::Path(root),
        };
        for file in render(&example).expect("render") {
            let committed = fs::read_to_string(dir.join(&file.path)).unwrap_or_default();
            assert!(
                committed == file.content,
                "examples/custom-plugin/{} is not what `plugin new` makes now; make the example again (see docs/plugins.md)",
                file.path.display()
            );
        }
    }

    #[test]
    fn relative_paths_climb_to_the_common_ancestor() {
        assert_eq!(
            relative(Path::new("/r/examples/p"), Path::new("/r/plugins/sdk")),
            PathBuf::from("../../plugins/sdk")
        );
        assert_eq!(
            relative(Path::new("/r"), Path::new("/r/api")),
            PathBuf::from("api")
        );
    }

    #[test]
    fn the_toolchain_is_the_checkouts() {
        assert!(
            toolchain_channel().starts_with("1."),
            "{}",
            toolchain_channel()
        );
    }
}
