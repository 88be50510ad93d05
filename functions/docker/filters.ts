import { InvalidInputError } from '../../shared/errors.js';

/**
 * The `filters` query parameter: JSON of `{"name": ["c1"]}`, or the older `{"name": {"c1": true}}`
 * that the CLI still sends. Filters an operation does not know are refused, as dockerd does.
 */
export class Filters {
  private constructor(private readonly values: ReadonlyMap<string, readonly string[]>) {}

  static parse(raw: string | null, known: readonly string[]): Filters {
    if (!raw) return new Filters(new Map());
    let parsed: unknown;
    try {
      parsed = JSON.parse(raw);
    } catch {
      throw new InvalidInputError('filters is not valid JSON');
    }
    if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw new InvalidInputError('filters must be a JSON object');
    const values = new Map<string, string[]>();
    for (const [name, value] of Object.entries(parsed)) {
      if (!known.includes(name)) throw new InvalidInputError(`invalid filter '${name}'`);
      if (Array.isArray(value) && value.every((v) => typeof v === 'string')) values.set(name, value);
      else if (typeof value === 'object' && value !== null)
        values.set(
          name,
          Object.keys(value).filter((k) => (value as Record<string, unknown>)[k] === true),
        );
      else throw new InvalidInputError(`filter '${name}' must be a list of strings`);
    }
    return new Filters(values);
  }

  has(name: string): boolean {
    return this.values.has(name);
  }

  get(name: string): readonly string[] {
    return this.values.get(name) ?? [];
  }

  /** True when the filter is absent or any of its values passes. */
  any(name: string, test: (value: string) => boolean): boolean {
    const values = this.values.get(name);
    return !values || values.some(test);
  }

  /** A boolean filter (`dangling=true`); undefined when absent. */
  flag(name: string): boolean | undefined {
    const values = this.values.get(name);
    if (!values?.length) return undefined;
    if (values.every((v) => /^(1|true)$/i.test(v))) return true;
    if (values.every((v) => /^(0|false)$/i.test(v))) return false;
    throw new InvalidInputError(`invalid filter '${name}=${values.join(',')}': must be true or false`);
  }

  /** `label=key` or `label=key=value` against a set of labels; all must hold. */
  labels(labels: Readonly<Record<string, string>>, name = 'label'): boolean {
    return this.get(name).every((filter) => {
      const eq = filter.indexOf('=');
      return eq < 0 ? filter in labels : labels[filter.slice(0, eq)] === filter.slice(eq + 1);
    });
  }
}
