import 'reflect-metadata';
import { Type } from 'class-transformer';
import {
  IsBoolean,
  IsDefined,
  IsIn,
  IsInt,
  IsNumber,
  IsOptional,
  ValidateIf,
  IsString,
  Min,
  ValidateNested,
  ValidatePromise,
  ValidationError,
  ValidatorConstraint,
  ValidatorConstraintInterface,
  Validate,
  registerDecorator,
  validate,
} from 'class-validator';
import { MessageValidationError } from '../../src/errors';
import { checkContract, validateContract } from '../../src/message/MessageContracts';
// eslint-disable-next-line @typescript-eslint/no-require-imports
const { ValidationExecutor } = require('class-validator/cjs/validation/ValidationExecutor') as { ValidationExecutor: { prototype: { execute(...args: unknown[]): void } } };

// checkContract runs class-validator's executor with the class's metadata cached and without a promise
// when nothing is asynchronous: its violations must be exactly what class-validator's validate() reports
// (the same options tmm uses), in the same order, for every shape below.
const PRODUCER = { forbidUnknownValues: true, whitelist: true, forbidNonWhitelisted: true };

function flatten(errors: ValidationError[], prefix = ''): { property: string; constraint: string; message: string }[] {
  const out: { property: string; constraint: string; message: string }[] = [];
  for (const e of errors) {
    const path = prefix ? `${prefix}.${e.property}` : e.property;
    for (const [constraint, message] of Object.entries(e.constraints ?? {})) out.push({ property: path, constraint, message });
    if (e.children && e.children.length > 0) out.push(...flatten(e.children, path));
  }
  return out;
}

async function reference(x: object): Promise<unknown[]> {
  return flatten(await validate(x, PRODUCER));
}

/** checkContract's violations ([] when valid), whether it answered synchronously or not. */
async function checked(x: object): Promise<{ violations: unknown[]; sync: boolean }> {
  let pending: Promise<void> | undefined;
  try {
    pending = checkContract(x, x.constructor.name);
    if (pending) await pending;
    return { violations: [], sync: pending === undefined };
  } catch (e) {
    if (!(e instanceof MessageValidationError)) throw e;
    return { violations: e.violations, sync: pending === undefined };
  }
}

class Line {
  @IsString() sku!: string;
  @IsInt() @Min(1) qty!: number;
}
class Base {
  @IsString() id!: string;
}
class Order extends Base {
  @IsInt() @Min(0) amount!: number;
  @IsOptional() @IsString() note?: string;
  @ValidateNested({ each: true }) @Type(() => Line) lines: Line[] = [];
}
/** Overrides the parent's constraint on `id`: the child's metadata wins over the inherited one. */
class Renamed extends Base {
  @IsInt() declare id: string;
}
class Empty {}

@ValidatorConstraint({ name: 'slowEven', async: true })
class SlowEven implements ValidatorConstraintInterface {
  validate(value: unknown): Promise<boolean> {
    return new Promise((resolve) => setImmediate(() => resolve(typeof value === 'number' && value % 2 === 0)));
  }
  defaultMessage(): string {
    return '$property must be even (checked later)';
  }
}
class WithAsync {
  @Validate(SlowEven) n!: number;
  @IsString() s!: string;
}
class WithPromise {
  @ValidatePromise() @IsInt() later!: Promise<number>;
}
class GrowsLater {
  @IsString() a!: string;
}

const line = (sku: unknown, qty: unknown) => Object.assign(new Line(), { sku, qty });
const cases: [string, () => object][] = [
  ['valid, inherited and nested', () => Object.assign(new Order(), { id: 'o', amount: 3, lines: [line('a', 1)] })],
  ['wrong types and a nested failure', () => Object.assign(new Order(), { id: 7, amount: -1, lines: [line('a', 1), line(2, 0)] })],
  ['unknown property (whitelist)', () => Object.assign(new Order(), { id: 'o', amount: 1, extra: true })],
  ['missing properties', () => new Order()],
  ['optional given wrong', () => Object.assign(new Order(), { id: 'o', amount: 1, note: 5 })],
  ['overridden inherited constraint', () => Object.assign(new Renamed(), { id: 'x' })],
  ['class without constraints (unknown value)', () => new Empty()],
];

describe('checkContract (cached class-validator metadata, no promise unless needed)', () => {
  it.each(cases)('%s: the same violations as validate(), synchronously', async (_name, make) => {
    const expected = await reference(make());
    // Twice: the first call fills the class's cache entry, the second one uses it.
    for (let i = 0; i < 2; i++) {
      const got = await checked(make());
      expect(got.violations).toEqual(expected);
      expect(got.sync).toBe(true);
    }
  });

  it('an asynchronous constraint is awaited (a promise), with the same violations', async () => {
    for (const x of [Object.assign(new WithAsync(), { n: 3, s: 1 }), Object.assign(new WithAsync(), { n: 4, s: 's' })]) {
      const expected = await reference(x);
      const got = await checked(x);
      expect(got.sync).toBe(false);
      expect(got.violations).toEqual(expected);
    }
    expect(await reference(Object.assign(new WithAsync(), { n: 3, s: 's' }))).toHaveLength(1);
  });

  it('@ValidatePromise values are awaited', async () => {
    const x = Object.assign(new WithPromise(), { later: Promise.resolve(1.5) });
    const got = await checked(x);
    expect(got.sync).toBe(false);
    expect(got.violations).toEqual(await reference(Object.assign(new WithPromise(), { later: Promise.resolve(1.5) })));
    expect(got.violations).toHaveLength(1);
  });

  it('a constraint registered on a class after it was validated is seen by the next check', async () => {
    const x = () => Object.assign(new GrowsLater(), { a: 'abc' });
    expect((await checked(x())).violations).toEqual([]);
    registerDecorator({
      name: 'shortString',
      target: GrowsLater,
      propertyName: 'a',
      validator: { validate: (v: unknown) => typeof v === 'string' && v.length < 3, defaultMessage: () => 'a must be short' },
    });
    const got = await checked(x());
    expect(got.violations).toEqual([{ property: 'a', constraint: 'shortString', message: 'a must be short' }]);
    expect(got.violations).toEqual(await reference(x()));
  });

  it('validateContract still returns a promise, rejecting with MessageValidationError', async () => {
    const bad = Object.assign(new Order(), { id: 1, amount: 1 });
    const p = validateContract(bad, 'Order');
    expect(p).toBeInstanceOf(Promise);
    await expect(p).rejects.toBeInstanceOf(MessageValidationError);
    await expect(validateContract(Object.assign(new Order(), { id: 'o', amount: 1 }), 'Order')).resolves.toBeUndefined();
  });
});

/** Flat contracts: checked by the plan (the same constraint instances, no executor) unless something fails. */
@ValidatorConstraint({ name: 'truthyNotBoolean' })
class TruthyNotBoolean implements ValidatorConstraintInterface {
  validate(value: unknown): boolean {
    return (value === 'ok' ? 1 : 0) as unknown as boolean; // the executor reads truthiness, not `true`
  }
}
@ValidatorConstraint({ name: 'promiseAnyway' })
class PromiseAnyway implements ValidatorConstraintInterface {
  validate(value: unknown): Promise<boolean> {
    return Promise.resolve(value === 'yes'); // declared synchronous, answers with a promise
  }
}
class Flat {
  @IsString() id!: string;
  @IsInt() @Min(0) amount!: number;
  @IsOptional() @IsString() note?: string | null;
  @IsNumber({ maxDecimalPlaces: 2 }) price!: number;
  @IsBoolean() paid!: boolean;
  @IsIn(['a', 'b']) kind!: string;
  @IsDefined() ref!: unknown;
  @ValidateIf((o: Flat) => o.paid) @IsString() receipt?: string;
  @Validate(TruthyNotBoolean) status!: string;
}
class Answers {
  @Validate(PromiseAnyway) answer!: string;
}
const flat = (over: Record<string, unknown> = {}) =>
  Object.assign(new Flat(), { id: 'f', amount: 1, price: 1.25, paid: false, kind: 'a', ref: 0, status: 'ok', ...over });
const flatCases: [string, () => object, boolean][] = [
  ['valid', () => flat(), true],
  ['valid, optional null', () => flat({ note: null }), true],
  ['valid, optional given', () => flat({ note: 'n' }), true],
  ['valid, ValidateIf on', () => flat({ paid: true, receipt: 'r' }), true],
  ['ValidateIf on, failing', () => flat({ paid: true, receipt: 3 }), false],
  ['wrong type', () => flat({ id: 7 }), false],
  ['below Min', () => flat({ amount: -1 }), false],
  ['too many decimals', () => flat({ price: 1.255 }), false],
  ['not in the list', () => flat({ kind: 'c' }), false],
  ['IsDefined missing', () => flat({ ref: undefined }), false],
  ['optional given wrong', () => flat({ note: 5 }), false],
  ['falsy custom answer', () => flat({ status: 'no' }), false],
  ['unknown property', () => flat({ extra: 1 }), false],
  ['missing everything', () => new Flat(), false],
];

describe('checkContract on flat contracts (the validation plan)', () => {
  let executed = 0;
  const original = ValidationExecutor.prototype.execute;
  beforeAll(() => {
    ValidationExecutor.prototype.execute = function (this: unknown, ...args: unknown[]) {
      executed++;
      return original.apply(this, args);
    };
  });
  afterAll(() => {
    ValidationExecutor.prototype.execute = original;
  });

  it.each(flatCases)('%s: the same violations as validate(), synchronously; the executor only when it fails', async (_name, make, valid) => {
    const expected = await reference(make());
    expect(expected.length === 0).toBe(valid);
    for (let i = 0; i < 2; i++) {
      executed = 0;
      const got = await checked(make());
      expect(got.violations).toEqual(expected);
      expect(got.sync).toBe(true);
      expect(executed).toBe(valid ? 0 : 1);
    }
  });

  it('a nested contract still goes to the executor', async () => {
    executed = 0;
    expect((await checked(Object.assign(new Order(), { id: 'o', amount: 3, lines: [line('a', 1)] }))).violations).toEqual([]);
    expect(executed).toBe(2); // the order, and (recursively) its one line
  });

  it('a synchronous constraint that answers with a promise is awaited by the executor', async () => {
    for (const answer of ['yes', 'no']) {
      const x = () => Object.assign(new Answers(), { answer });
      const got = await checked(x());
      expect(got.sync).toBe(false);
      expect(got.violations).toEqual(await reference(x()));
      expect(got.violations).toHaveLength(answer === 'yes' ? 0 : 1);
    }
  });

  it('on the consumer side an unknown property is still stripped (by the executor), not refused', async () => {
    const x = flat({ extra: 1 });
    expect(checkContract(x, 'Flat', { rejectUnknownProperties: false })).toBeUndefined();
    expect('extra' in x).toBe(false);
  });
});
