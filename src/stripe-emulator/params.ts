/**
 * Reading Stripe's form-encoded parameters with Stripe's validation errors. Every endpoint declares
 * the parameters it knows; anything else is `parameter_unknown` naming the parameter (nested ones
 * as `automatic_payment_methods[foo]`). All errors raised here are parameter-validation errors, so
 * they are never stored under an idempotency key (contract I7).
 *
 * The SDK encodes `null` as an empty string; for optional scalars that means "not set".
 */
import { missingParameter, paramError, unknownParameter } from './errors';
import { type FormParams, type FormValue } from './router';

export type Metadata = Record<string, string>;

const MAX_METADATA_KEYS = 50;
const MAX_METADATA_KEY_LENGTH = 40;
const MAX_METADATA_VALUE_LENGTH = 500;

export class ParamReader {
  constructor(
    private readonly params: FormParams,
    private readonly prefix = '',
  ) {}

  /** Rejects any parameter not in `known` (every endpoint also accepts a top-level `expand`). */
  allowOnly(known: readonly string[]): this {
    for (const key of Object.keys(this.params)) {
      if (known.includes(key) || (key === 'expand' && this.prefix === '')) continue;
      throw unknownParameter(this.name(key));
    }
    return this;
  }

  has(key: string): boolean {
    const value = this.params[key];
    return value !== undefined && value !== '';
  }

  optionalString(key: string, maxLength = 5000): string | undefined {
    const value = this.params[key];
    if (value === undefined || value === '') return undefined;
    if (typeof value !== 'string') throw paramError(`Invalid string: ${describe(value)}`, this.name(key));
    if (value.length > maxLength) {
      throw paramError(
        `Invalid string: ${value.slice(0, 20)}...; must be at most ${maxLength} characters`,
        this.name(key),
      );
    }
    return value;
  }

  requiredString(key: string, maxLength = 5000): string {
    const value = this.optionalString(key, maxLength);
    if (value === undefined) throw missingParameter(this.name(key));
    return value;
  }

  optionalEnum<T extends string>(key: string, allowed: readonly T[]): T | undefined {
    const value = this.optionalString(key);
    if (value === undefined) return undefined;
    const found = allowed.find((candidate) => candidate === value);
    if (found === undefined) {
      throw paramError(
        `Invalid ${this.name(key)}: must be one of ${allowed.join(', ')}`,
        this.name(key),
        'parameter_invalid_string',
      );
    }
    return found;
  }

  optionalInteger(key: string): number | undefined {
    const value = this.params[key];
    if (value === undefined || value === '') return undefined;
    if (typeof value !== 'string' || !/^-?\d{1,15}$/.test(value)) {
      throw paramError(
        `Invalid integer: ${typeof value === 'string' ? value : describe(value)}`,
        this.name(key),
        'parameter_invalid_integer',
      );
    }
    return Number(value);
  }

  requiredInteger(key: string): number {
    const value = this.optionalInteger(key);
    if (value === undefined) throw missingParameter(this.name(key));
    return value;
  }

  optionalBoolean(key: string): boolean | undefined {
    const value = this.params[key];
    if (value === undefined || value === '') return undefined;
    if (value === 'true') return true;
    if (value === 'false') return false;
    throw paramError(
      `Invalid boolean: ${typeof value === 'string' ? value : describe(value)}`,
      this.name(key),
    );
  }

  optionalStringList(key: string): string[] | undefined {
    const value = this.params[key];
    if (value === undefined || value === '') return undefined;
    const items = Array.isArray(value) ? value : typeof value === 'object' ? Object.values(value) : undefined;
    if (!items || items.some((item) => typeof item !== 'string')) {
      throw paramError(`Invalid array`, this.name(key));
    }
    return items as string[];
  }

  /** A nested hash such as `automatic_payment_methods[enabled]`, read with its own known keys. */
  optionalObject(key: string): ParamReader | undefined {
    const value = this.params[key];
    if (value === undefined || value === '') return undefined;
    if (typeof value !== 'object' || Array.isArray(value)) {
      throw paramError(`Invalid object`, this.name(key));
    }
    return new ParamReader(value, this.name(key));
  }

  /** A hash whose content the emulator accepts without interpreting (e.g. `payment_method_options`). */
  optionalOpaqueObject(key: string): void {
    this.optionalObject(key);
  }

  /**
   * `metadata[k]=v`: up to 50 keys of at most 40 characters, values up to 500 characters; an empty
   * value removes the key on update.
   */
  optionalMetadata(key = 'metadata'): Metadata | undefined {
    const value = this.params[key];
    if (value === undefined) return undefined;
    if (value === '') return {};
    if (typeof value !== 'object' || Array.isArray(value)) {
      throw paramError(`Invalid object`, this.name(key));
    }
    const entries = Object.entries(value);
    if (entries.length > MAX_METADATA_KEYS) {
      throw paramError(`Invalid ${key}: must have at most ${MAX_METADATA_KEYS} keys`, this.name(key));
    }
    const metadata: Metadata = {};
    for (const [k, v] of entries) {
      if (typeof v !== 'string')
        throw paramError(`Invalid string: ${describe(v)}`, `${this.name(key)}[${k}]`);
      if (k.length > MAX_METADATA_KEY_LENGTH) {
        throw paramError(
          `Metadata keys can have up to ${MAX_METADATA_KEY_LENGTH} characters; "${k}" has ${k.length}.`,
          this.name(key),
        );
      }
      if (v.length > MAX_METADATA_VALUE_LENGTH) {
        throw paramError(
          `Metadata values can have up to ${MAX_METADATA_VALUE_LENGTH} characters, but you passed in a value that is ${v.length} characters.`,
          `${this.name(key)}[${k}]`,
        );
      }
      metadata[k] = v;
    }
    return metadata;
  }

  private name(key: string): string {
    return this.prefix === '' ? key : `${this.prefix}[${key}]`;
  }
}

function describe(value: FormValue): string {
  if (typeof value === 'string') return value;
  return Array.isArray(value) ? 'array' : 'object';
}

/**
 * The canonical form of a decoded parameter tree for idempotency comparison (contract I19, our
 * choice): key order does not matter, any value change does.
 */
export function canonicalParams(value: FormValue | FormParams): string {
  if (typeof value === 'string') return JSON.stringify(value);
  if (Array.isArray(value)) return `[${value.map(canonicalParams).join(',')}]`;
  const keys = Object.keys(value).sort();
  return `{${keys.map((key) => `${JSON.stringify(key)}:${canonicalParams(value[key] ?? '')}`).join(',')}}`;
}
