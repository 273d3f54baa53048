/**
 * 64-bit integers in ProtoJSON as the spec writes them: a decimal string (or
 * a JSON number that is a safe integer), without spaces, sign noise, leading
 * zeros, hex or exponent. protobuf-es parses such strings with BigInt(),
 * which also takes "0x10" and " 12" (as 16 and 12): a client that sends
 * those has a bug, and reading them as another id hides it, so the RPC
 * layer and the gateway check JSON input here before it is parsed.
 */
import { ScalarType, type DescField, type DescMessage } from "@bufbuild/protobuf";

const SIGNED = /^-?(0|[1-9]\d*)$/;
const UNSIGNED = /^(0|[1-9]\d*)$/;

const INT64_TYPES = new Set<ScalarType>([ScalarType.INT64, ScalarType.SINT64, ScalarType.SFIXED64, ScalarType.UINT64, ScalarType.FIXED64]);
const isUnsigned = (t: ScalarType) => t === ScalarType.UINT64 || t === ScalarType.FIXED64;
/** Well-known types whose JSON is a bare 64-bit string. */
const INT64_WRAPPERS: Record<string, ScalarType> = {
  "google.protobuf.Int64Value": ScalarType.INT64,
  "google.protobuf.UInt64Value": ScalarType.UINT64,
};

/** A 64-bit value that is not canonical: the field's proto path and the value as sent. */
export interface NonCanonicalInt {
  path: string;
  value: unknown;
}

function intProblem(type: ScalarType, value: unknown): boolean {
  if (typeof value === "number") return !Number.isSafeInteger(value) || (isUnsigned(type) && value < 0);
  if (typeof value === "string") return !(isUnsigned(type) ? UNSIGNED : SIGNED).test(value);
  return false; // not a number at all: the parser's own error says so
}

/** The first non-canonical 64-bit integer in `json` read as `desc`, or undefined. */
export function findNonCanonicalInt(desc: DescMessage, json: unknown, path = ""): NonCanonicalInt | undefined {
  const wrapper = INT64_WRAPPERS[desc.typeName];
  if (wrapper !== undefined) return intProblem(wrapper, json) ? { path: path || desc.typeName, value: json } : undefined;
  if (typeof json !== "object" || json === null || Array.isArray(json)) return undefined;
  for (const [key, value] of Object.entries(json)) {
    const field = desc.fields.find((f) => f.jsonName === key || f.name === key);
    if (!field || value === null) continue;
    const problem = fieldProblem(field, value, path === "" ? field.name : `${path}.${field.name}`);
    if (problem) return problem;
  }
  return undefined;
}

function fieldProblem(field: DescField, value: unknown, path: string): NonCanonicalInt | undefined {
  switch (field.fieldKind) {
    case "scalar":
      return INT64_TYPES.has(field.scalar) && intProblem(field.scalar, value) ? { path, value } : undefined;
    case "message":
      return findNonCanonicalInt(field.message, value, path);
    case "enum":
      return undefined;
    case "list":
      if (!Array.isArray(value)) return undefined;
      for (const [i, item] of value.entries()) {
        const at = `${path}[${i}]`;
        if (field.listKind === "scalar" && INT64_TYPES.has(field.scalar) && intProblem(field.scalar, item)) return { path: at, value: item };
        if (field.listKind === "message") {
          const problem = findNonCanonicalInt(field.message, item, at);
          if (problem) return problem;
        }
      }
      return undefined;
    case "map":
      if (typeof value !== "object" || Array.isArray(value)) return undefined;
      for (const [k, v] of Object.entries(value as object)) {
        const at = `${path}[${JSON.stringify(k)}]`;
        if (INT64_TYPES.has(field.mapKey) && intProblem(field.mapKey, k)) return { path: at, value: k };
        if (field.mapKind === "scalar" && INT64_TYPES.has(field.scalar) && intProblem(field.scalar, v)) return { path: at, value: v };
        if (field.mapKind === "message") {
          const problem = findNonCanonicalInt(field.message, v, at);
          if (problem) return problem;
        }
      }
      return undefined;
  }
}

/** The error message for one: "<field>: not a canonical decimal integer (got "0x10")". */
export function describeNonCanonicalInt(problem: NonCanonicalInt): string {
  return `${problem.path}: not a canonical decimal integer (got ${JSON.stringify(problem.value)})`;
}
