/**
 * The workflow bundle's own modules are evaluated once per workflow thread and shared by every run
 * on it (`checkoutBundleOptions` in src/worker.ts), so anything they keep at the top level is
 * shared too: a `let` counter, a cache `Map`, a stateful regular expression would carry one
 * checkout's data into another's replay. The SDK deep-freezes what the modules export, which
 * catches writes to exported objects at run time; this test catches the rest before it runs.
 *
 * It follows the imports from the preloaded entry points (the same list the bundle uses) and checks
 * every top-level declaration of our modules: only `const`; no collections, class instances or
 * `g`/`y` regular expressions; array and object literals only when typed read-only; calls only to
 * the SDK's definers (`defineQuery`, `proxyActivities`, ...), which return stateless objects; and no
 * class fields that are `static` and writable.
 */
import assert from 'node:assert/strict';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import path from 'node:path';
import ts from 'typescript';
import { checkoutBundleOptions } from '../../src/worker';

const ROOT = path.resolve(__dirname, '..', '..');

/** Calls whose result may sit at the top level: each returns a definition or a stateless proxy. */
const STATELESS_CALLS = new Set([
  'defineQuery',
  'defineSignal',
  'defineUpdate',
  'defineSearchAttributeKey',
  'proxyActivities',
  'proxyLocalActivities',
]);

function resolveRelative(from: string, spec: string): string {
  const base = path.resolve(path.dirname(from), spec);
  for (const candidate of [`${base}.ts`, path.join(base, 'index.ts'), base]) {
    if (existsSync(candidate) && candidate.endsWith('.ts')) return candidate;
  }
  throw new Error(`${path.relative(ROOT, from)} imports ${spec}, which does not resolve to a .ts file`);
}

/** Our modules reachable from the entry points through value imports (type-only imports vanish). */
function workflowModules(entries: readonly string[]): Map<string, ts.SourceFile> {
  const found = new Map<string, ts.SourceFile>();
  const queue = [...entries];
  while (queue.length > 0) {
    const file = queue.shift() as string;
    if (found.has(file)) continue;
    const source = ts.createSourceFile(file, readFileSync(file, 'utf8'), ts.ScriptTarget.ES2022, true);
    found.set(file, source);
    for (const statement of source.statements) {
      const spec =
        (ts.isImportDeclaration(statement) && !statement.importClause?.isTypeOnly) ||
        (ts.isExportDeclaration(statement) && !statement.isTypeOnly)
          ? statement.moduleSpecifier
          : undefined;
      if (spec && ts.isStringLiteral(spec) && spec.text.startsWith('.')) {
        queue.push(resolveRelative(file, spec.text));
      }
    }
  }
  return found;
}

function unwrap(node: ts.Expression): ts.Expression {
  let e = node;
  while (ts.isParenthesizedExpression(e) || ts.isSatisfiesExpression(e) || ts.isAsExpression(e)) {
    e = e.expression;
  }
  return e;
}

function isConstAssertion(node: ts.Expression): boolean {
  let e = node;
  while (ts.isParenthesizedExpression(e) || ts.isSatisfiesExpression(e)) e = e.expression;
  return ts.isAsExpression(e) && ts.isTypeReferenceNode(e.type) && e.type.typeName.getText() === 'const';
}

function readOnlyType(type: ts.TypeNode | undefined): boolean {
  if (!type) return false;
  if (ts.isTypeOperatorNode(type)) return type.operator === ts.SyntaxKind.ReadonlyKeyword;
  return (
    ts.isTypeReferenceNode(type) &&
    /^(Readonly|ReadonlyArray|ReadonlyMap|ReadonlySet)$/.test(type.typeName.getText())
  );
}

/** What is wrong with one top-level `const` initializer, if anything. */
function initializerProblem(decl: ts.VariableDeclaration): string | undefined {
  const init = decl.initializer;
  if (!init) return undefined;
  const value = unwrap(init);
  if (ts.isRegularExpressionLiteral(value)) {
    const flags = value.text.slice(value.text.lastIndexOf('/') + 1);
    return /[gy]/.test(flags) ? `a regular expression with the "${flags}" flags keeps lastIndex` : undefined;
  }
  if (ts.isNewExpression(value)) return `"new ${value.expression.getText()}" creates a shared instance`;
  if (ts.isArrayLiteralExpression(value) || ts.isObjectLiteralExpression(value)) {
    return isConstAssertion(init) || readOnlyType(decl.type)
      ? undefined
      : 'an array or object literal that is neither "as const" nor typed read-only';
  }
  if (ts.isCallExpression(value)) {
    const callee = value.expression.getText();
    return STATELESS_CALLS.has(callee) ? undefined : `a call to ${callee}, whose result would be shared`;
  }
  return undefined;
}

function problemsIn(source: ts.SourceFile): string[] {
  const problems: string[] = [];
  const at = (node: ts.Node, what: string): void => {
    const { line } = source.getLineAndCharacterOfPosition(node.getStart());
    problems.push(`${path.relative(ROOT, source.fileName)}:${line + 1}: ${what}`);
  };
  for (const statement of source.statements) {
    if (ts.isVariableStatement(statement)) {
      const flags = statement.declarationList.flags;
      if (!(flags & ts.NodeFlags.Const)) {
        at(statement, 'a top-level "let" or "var" would be shared by every run');
        continue;
      }
      for (const decl of statement.declarationList.declarations) {
        const problem = initializerProblem(decl);
        if (problem) at(decl, problem);
      }
    } else if (ts.isExpressionStatement(statement)) {
      at(statement, 'a top-level statement runs once per thread, not once per run');
    } else if (ts.isClassDeclaration(statement)) {
      for (const member of statement.members) {
        const mods = ts.canHaveModifiers(member) ? (ts.getModifiers(member) ?? []) : [];
        const isStatic = mods.some((m) => m.kind === ts.SyntaxKind.StaticKeyword);
        const isReadonly = mods.some((m) => m.kind === ts.SyntaxKind.ReadonlyKeyword);
        if (ts.isPropertyDeclaration(member) && isStatic && !isReadonly) {
          at(member, 'a writable static field would be shared by every run');
        }
      }
    }
  }
  return problems;
}

describe('workflow modules shared by every run', () => {
  const modules = workflowModules(checkoutBundleOptions().preloadModules ?? []);

  it('follows the preloaded entry points to every workflow module', () => {
    const names = new Set([...modules.keys()].map((f) => path.relative(ROOT, f)));
    const workflowFiles = readdirSync(path.join(ROOT, 'src', 'workflows'))
      .filter((f) => f.endsWith('.ts'))
      .map((f) => `src/workflows/${f}`);
    for (const f of [
      ...workflowFiles,
      'src/observability/workflow-tracing.ts',
      'src/observability/metric-names.ts',
    ]) {
      assert.ok(names.has(f), `${f} is not reached from ${[...names].join(', ')}`);
    }
  });

  it('keep no state at the top level', () => {
    const problems = [...modules.values()].flatMap(problemsIn);
    assert.deepEqual(problems, []);
  });

  it('flags what would leak between runs', () => {
    const source = ts.createSourceFile(
      path.join(ROOT, 'src', 'workflows', 'example.ts'),
      [
        'let attempts = 0;',
        'const seen = new Map<string, number>();',
        'const ids = /pi_[a-z]+/g;',
        'const order = [1, 2];',
        'const fine = [1, 2] as const;',
        'const alsoFine: readonly number[] = [1];',
        "const q = defineQuery<string>('status');",
        'const cache = makeCache();',
        'class Counter { static total = 0; static readonly LIMIT = 3; }',
        'register();',
      ].join('\n'),
      ts.ScriptTarget.ES2022,
      true,
    );
    const lines = problemsIn(source).map((p) => Number(/:(\d+):/.exec(p)?.[1]));
    assert.deepEqual(lines, [1, 2, 3, 4, 8, 9, 10]);
  });
});
