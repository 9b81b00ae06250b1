//! Reader for CTranslate2 `model.bin` files (format version 6).

use std::collections::HashMap;

use super::error::ModelError;

/// Element type of a stored variable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DType {
    F32,
    I8,
    I16,
    I32,
    F16,
}

impl DType {
    fn from_code(code: u8) -> Option<Self> {
        Some(match code {
            0 => Self::F32,
            1 => Self::I8,
            2 => Self::I16,
            3 => Self::I32,
            4 => Self::F16,
            _ => return None,
        })
    }

    fn size(self) -> usize {
        match self {
            Self::I8 => 1,
            Self::I16 | Self::F16 => 2,
            Self::F32 | Self::I32 => 4,
        }
    }
}

/// One named tensor as stored in the file.
#[derive(Debug, Clone)]
pub struct Variable {
    pub shape: Vec<usize>,
    pub dtype: DType,
    pub data: Vec<u8>,
}

impl Variable {
    pub fn n_elements(&self) -> usize {
        self.shape.iter().product()
    }

    /// The values as f32, whatever the stored float type.
    pub fn to_f32(&self) -> Result<Vec<f32>, ModelError> {
        let chunks = self.data.chunks_exact(self.dtype.size());
        match self.dtype {
            DType::F32 => Ok(chunks.map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect()),
            DType::F16 => Ok(chunks.map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32()).collect()),
            other => Err(ModelError::Format(format!("expected a float tensor, found {other:?}"))),
        }
    }
}

/// A parsed model: its spec name and variables by name, aliases resolved.
#[derive(Debug)]
pub struct Ct2Model {
    pub spec: String,
    pub variables: HashMap<String, Variable>,
}

struct Cursor<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], ModelError> {
        let end = self.pos.checked_add(n).filter(|&end| end <= self.bytes.len());
        let end = end.ok_or_else(|| ModelError::Format(format!("file ends early at byte {}", self.pos)))?;
        let slice = &self.bytes[self.pos..end];
        self.pos = end;
        Ok(slice)
    }

    fn u8(&mut self) -> Result<u8, ModelError> {
        Ok(self.take(1)?[0])
    }

    fn u16(&mut self) -> Result<u16, ModelError> {
        let b = self.take(2)?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    }

    fn u32(&mut self) -> Result<u32, ModelError> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn string(&mut self) -> Result<String, ModelError> {
        let len = self.u16()? as usize;
        let raw = self.take(len)?;
        let raw = raw.strip_suffix(&[0]).unwrap_or(raw);
        String::from_utf8(raw.to_vec()).map_err(|_| ModelError::Format("a name is not UTF-8".into()))
    }
}

/// Parses a whole `model.bin` held in memory.
pub fn parse(bytes: &[u8]) -> Result<Ct2Model, ModelError> {
    let mut cur = Cursor { bytes, pos: 0 };
    let version = cur.u32()?;
    if version != 6 {
        return Err(ModelError::Format(format!("unsupported CTranslate2 format version {version}")));
    }
    let spec = cur.string()?;
    let _revision = cur.u32()?;
    let n_variables = cur.u32()?;
    let mut variables = HashMap::with_capacity(n_variables as usize);
    for _ in 0..n_variables {
        let (name, var) = read_variable(&mut cur)?;
        variables.insert(name, var);
    }
    let n_aliases = cur.u32()?;
    for _ in 0..n_aliases {
        let alias = cur.string()?;
        let target = cur.string()?;
        if let Some(var) = variables.get(&target).cloned() {
            variables.insert(alias, var);
        }
    }
    Ok(Ct2Model { spec, variables })
}

fn read_variable(cur: &mut Cursor<'_>) -> Result<(String, Variable), ModelError> {
    let name = cur.string()?;
    let rank = cur.u8()? as usize;
    let shape = (0..rank).map(|_| cur.u32().map(|d| d as usize)).collect::<Result<Vec<_>, _>>()?;
    let code = cur.u8()?;
    let dtype = DType::from_code(code).ok_or_else(|| ModelError::Format(format!("{name}: unknown dtype {code}")))?;
    let n_bytes = cur.u32()? as usize;
    let data = cur.take(n_bytes)?.to_vec();
    let var = Variable { shape, dtype, data };
    if var.n_elements() * dtype.size() != n_bytes {
        return Err(ModelError::Format(format!("{name}: {n_bytes} bytes do not fit its shape")));
    }
    Ok((name, var))
}
