import 'reflect-metadata';
import { instanceToPlain, Exclude, Expose, Transform, Type } from 'class-transformer';
import { serializeContract, transformerFree } from '../../src/message/MessageContracts';

// serializeContract skips class-transformer for flat classes without its decorators: the text must be
// exactly what JSON.stringify(instanceToPlain(x)) gives, in every case.
const reference = (x: object) => JSON.stringify(instanceToPlain(x));

class Flat {
  id = 'o-1';
  amount = 12.5;
  paid = true;
  note: string | null = null;
  missing: string | undefined = undefined;
  nan = Number.NaN;
}
class WithTransform {
  @Transform(({ value }) => String(value).toUpperCase()) code = 'abc';
  n = 1;
}
class WithExclude {
  @Exclude() secret = 's';
  visible = 'v';
}
@Exclude()
class ExposeOnly {
  @Expose() shown = 1;
  hidden = 2;
}
class Child {
  @Transform(({ value }) => value * 2) x = 2;
}
class Parent {
  @Type(() => Child) child = new Child();
}
class Sub extends WithExclude {
  extra = 'e';
}
class WithToJson {
  a = 1;
  toJSON() {
    return { b: 2 };
  }
}
class WithDate {
  at = new Date(0);
  tags = new Set(['a']);
}

describe('serializeContract', () => {
  it.each([
    ['a flat class of primitives', new Flat()],
    ['a @Transform property', new WithTransform()],
    ['an @Exclude property', new WithExclude()],
    ['@Exclude on the class with @Expose', new ExposeOnly()],
    ['a nested @Type', new Parent()],
    ['a subclass of a decorated class', new Sub()],
    ['a class with toJSON', new WithToJson()],
    ['Date and Set values', new WithDate()],
  ])('gives the same text as class-transformer for %s', (_name, value) => {
    expect(serializeContract(value)).toBe(reference(value));
  });

  it('honours the decorators (the cases above would differ from plain JSON.stringify)', () => {
    expect(serializeContract(new WithTransform())).toBe('{"code":"ABC","n":1}');
    expect(serializeContract(new Sub())).toBe('{"visible":"v","extra":"e"}');
    expect(serializeContract(new ExposeOnly())).toBe('{"shown":1}');
    expect(serializeContract(new WithDate())).toBe('{"at":"1970-01-01T00:00:00.000Z","tags":["a"]}');
  });

  it('skips class-transformer only for classes without its decorators (on the class or an ancestor)', () => {
    expect(transformerFree(Flat)).toBe(true);
    expect(transformerFree(WithToJson)).toBe(true); // its toJSON sends it down the slow path per instance
    for (const t of [WithTransform, WithExclude, ExposeOnly, Parent, Sub]) expect(transformerFree(t)).toBe(false);
  });
});
