/**
 * A small LaTeX (and plain-text) math reader that turns an answer such as `2\sqrt{3}`,
 * `\frac{1}{2}x^2`, `3\pi/4` or `sqrt(12)` into a math.js expression string: the stand-in for
 * latex2sympy / sympy's `parse_latex` / `parse_expr` in the grader's `symbolic_equal`.
 *
 * Every variable becomes `v_<name>` so that math.js never reads `e`, `i` or `E` as constants
 * (sympy's LaTeX parser makes them plain symbols too); `\pi` and `π` are pi, `\infty` Infinity.
 * Juxtaposition multiplies, `^` takes one group or one token (`x^23` is `x^2·3`), `\frac12`
 * takes single-token arguments. Anything it does not know (intervals, sets, `\pm`, matrices,
 * inequalities, text) throws {@linkcode LatexError}, and the caller falls back to comparing
 * strings, as the Python grader does when sympy cannot parse.
 *
 * @module
 */

/** The input is not an expression this reader understands. */
export class LatexError extends Error {
  /** Always "LatexError". */
  override name = "LatexError";
}

type Token =
  | { kind: "num"; text: string }
  | { kind: "id"; text: string }
  | { kind: "cmd"; text: string }
  | { kind: "op"; text: string };

const FUNCTIONS: Record<string, string> = {
  sin: "sin",
  cos: "cos",
  tan: "tan",
  cot: "cot",
  sec: "sec",
  csc: "csc",
  arcsin: "asin",
  arccos: "acos",
  arctan: "atan",
  sinh: "sinh",
  cosh: "cosh",
  tanh: "tanh",
  ln: "log",
  log: "log",
  exp: "exp",
};

const IGNORED_COMMANDS = new Set([
  "left",
  "right",
  "big",
  "Big",
  "bigg",
  "Bigg",
  "displaystyle",
  ",",
  ";",
  ":",
  "!",
  " ",
  "quad",
  "qquad",
]);

const TEXT_WRAPPERS = new Set(["mathrm", "text", "mathbf", "textbf", "mathit", "operatorname"]);

function tokenize(input: string): Token[] {
  const tokens: Token[] = [];
  let i = 0;
  while (i < input.length) {
    const ch = input[i];
    if (/\s/u.test(ch)) {
      i++;
    } else if (/[0-9.]/.test(ch)) {
      const m = /^(?:\d+(?:\.\d*)?|\.\d+)/.exec(input.slice(i));
      if (m === null) throw new LatexError(`stray "." at ${i}`);
      tokens.push({ kind: "num", text: m[0] });
      i += m[0].length;
    } else if (ch === "\\") {
      const m = /^\\(?:[A-Za-z]+|.)/su.exec(input.slice(i));
      if (m === null) throw new LatexError(`a lone "\\" at the end`);
      tokens.push({ kind: "cmd", text: m[0].slice(1) });
      i += m[0].length;
    } else if (/[A-Za-z]/.test(ch)) {
      const m = /^[A-Za-z]+/.exec(input.slice(i))!;
      tokens.push({ kind: "id", text: m[0] });
      i += m[0].length;
    } else if (ch === "π") {
      tokens.push({ kind: "cmd", text: "pi" });
      i++;
    } else if (ch === "*" && input[i + 1] === "*") {
      tokens.push({ kind: "op", text: "^" });
      i += 2;
    } else if ("+-*/^_(){}[]|!=".includes(ch)) {
      tokens.push({ kind: "op", text: ch });
      i++;
    } else {
      throw new LatexError(`unsupported character ${JSON.stringify(ch)}`);
    }
  }
  return tokens;
}

/** True when `s` is one parenthesised group: "(…)" whose first "(" closes at the end. */
function isWrapped(s: string): boolean {
  if (!s.startsWith("(") || !s.endsWith(")")) return false;
  let depth = 0;
  for (let i = 0; i < s.length; i++) {
    if (s[i] === "(") depth++;
    else if (s[i] === ")" && --depth === 0) return i === s.length - 1;
  }
  return false;
}

/** `fn(arg)` without doubling the parentheses of an already parenthesised argument. */
function call(fn: string, arg: string, extra = ""): string {
  const inner = isWrapped(arg) && extra === "" ? arg : `(${arg}${extra})`;
  return fn + inner;
}

class Reader {
  #tokens: Token[];
  #pos = 0;

  constructor(tokens: Token[]) {
    this.#tokens = tokens.filter((t) => !(t.kind === "cmd" && IGNORED_COMMANDS.has(t.text)));
  }

  peek(): Token | undefined {
    return this.#tokens[this.#pos];
  }

  next(): Token {
    const token = this.#tokens[this.#pos++];
    if (token === undefined) throw new LatexError("unexpected end of expression");
    return token;
  }

  isOp(text: string): boolean {
    const t = this.peek();
    return t?.kind === "op" && t.text === text;
  }

  expect(text: string): void {
    const t = this.next();
    if (t.kind !== "op" || t.text !== text) throw new LatexError(`expected "${text}"`);
  }

  done(): boolean {
    return this.#pos >= this.#tokens.length;
  }

  // expr := term (("+" | "-") term)*
  expr(): string {
    let out = this.term();
    while (this.isOp("+") || this.isOp("-")) {
      const op = this.next().text;
      out = `(${out} ${op} ${this.term()})`;
    }
    return out;
  }

  // term := unary (("*" | "/" | \cdot | \times | \div | juxtaposition) unary)*
  term(): string {
    let out = this.unary();
    for (;;) {
      const t = this.peek();
      if (t === undefined) return out;
      if (t.kind === "op" && (t.text === "*" || t.text === "/")) {
        this.next();
        out = `(${out} ${t.text} ${this.unary()})`;
      } else if (t.kind === "cmd" && (t.text === "cdot" || t.text === "times")) {
        this.next();
        out = `(${out} * ${this.unary()})`;
      } else if (t.kind === "cmd" && t.text === "div") {
        this.next();
        out = `(${out} / ${this.unary()})`;
      } else if (this.startsAtom(t)) {
        out = `(${out} * ${this.power()})`;
      } else {
        return out;
      }
    }
  }

  startsAtom(t: Token): boolean {
    if (t.kind === "num" || t.kind === "id") return true;
    if (t.kind === "op") return t.text === "(" || t.text === "{" || t.text === "[";
    return t.text !== "cdot" && t.text !== "times" && t.text !== "div";
  }

  unary(): string {
    if (this.isOp("-")) {
      this.next();
      return `(-${this.unary()})`;
    }
    if (this.isOp("+")) {
      this.next();
      return this.unary();
    }
    return this.power();
  }

  // power := postfix ("^" (group | single token))?
  power(): string {
    const base = this.postfix();
    if (!this.isOp("^")) return base;
    this.next();
    return `(${base} ^ ${this.exponent()})`;
  }

  exponent(): string {
    if (this.isOp("{")) return this.group("{", "}");
    if (this.isOp("-")) {
      this.next();
      return `(-${this.exponent()})`;
    }
    const t = this.peek();
    if (t?.kind === "num") {
      this.next();
      // LaTeX takes one character: x^23 is x^2 followed by 3.
      if (t.text.length > 1) this.pushBack({ kind: "num", text: t.text.slice(1) });
      return t.text[0];
    }
    if (t?.kind === "id" && t.text.length > 1 && FUNCTIONS[t.text] === undefined) {
      this.next();
      this.pushBack({ kind: "id", text: t.text.slice(1) });
      return this.subscripted(t.text[0]);
    }
    return this.postfix();
  }

  pushBack(token: Token): void {
    this.#tokens.splice(this.#pos, 0, token);
  }

  postfix(): string {
    let out = this.atom();
    while (this.isOp("!")) {
      this.next();
      out = call("factorial", out);
    }
    return out;
  }

  group(open: string, close: string): string {
    this.expect(open);
    const inner = this.expr();
    this.expect(close);
    return `(${inner})`;
  }

  // One argument of \frac or \sqrt: a {group}, or one token (\frac12).
  argument(): string {
    if (this.isOp("{")) return this.group("{", "}");
    const t = this.next();
    if (t.kind === "num") {
      if (t.text.length > 1) this.pushBack({ kind: "num", text: t.text.slice(1) });
      return t.text[0];
    }
    if (t.kind === "id") {
      if (t.text.length > 1) this.pushBack({ kind: "id", text: t.text.slice(1) });
      return `v_${t.text[0]}`;
    }
    if (t.kind === "cmd") {
      this.pushBack(t);
      return this.atom();
    }
    throw new LatexError(`unexpected "${t.text}" as an argument`);
  }

  atom(): string {
    const t = this.next();
    if (t.kind === "num") return t.text.startsWith(".") ? `0${t.text}` : t.text;
    if (t.kind === "op") {
      if (t.text === "(") return this.closeGroup(")");
      if (t.text === "[") return this.closeGroup("]");
      if (t.text === "{") return this.closeGroup("}");
      if (t.text === "|") return call("abs", this.closeGroup("|"));
      throw new LatexError(`unexpected "${t.text}"`);
    }
    if (t.kind === "id") return this.identifier(t.text);
    return this.command(t.text);
  }

  closeGroup(close: string): string {
    const inner = this.expr();
    this.expect(close);
    return `(${inner})`;
  }

  identifier(text: string): string {
    if (text === "pi") return "pi";
    const fn = text === "sqrt" ? "sqrt" : FUNCTIONS[text];
    if (fn !== undefined) return call(fn, this.functionArgument());
    // Juxtaposed letters multiply (latex2sympy: "ab" is a·b); a subscript binds to the last.
    const letters = text.split("");
    const last = letters.pop()!;
    const names = letters.map((l) => `v_${l}`);
    names.push(this.subscripted(last));
    return names.length === 1 ? names[0] : `(${names.join(" * ")})`;
  }

  subscripted(letter: string): string {
    if (!this.isOp("_")) return `v_${letter}`;
    this.next();
    let sub: string;
    if (this.isOp("{")) {
      this.next();
      sub = "";
      while (!this.isOp("}")) {
        const t = this.next();
        if (t.kind !== "num" && t.kind !== "id") throw new LatexError("unsupported subscript");
        sub += t.text;
      }
      this.next();
    } else {
      const t = this.next();
      if (t.kind !== "num" && t.kind !== "id") throw new LatexError("unsupported subscript");
      sub = t.text[0];
      if (t.text.length > 1) this.pushBack({ kind: t.kind, text: t.text.slice(1) });
    }
    return `v_${letter}_${sub.replaceAll(".", "p")}`;
  }

  functionArgument(): string {
    if (this.isOp("(")) return this.group("(", ")");
    if (this.isOp("{")) return this.group("{", "}");
    return this.power();
  }

  command(name: string): string {
    if (name === "frac" || name === "dfrac" || name === "tfrac") {
      const num = this.argument();
      const den = this.argument();
      return `(${num} / ${den})`;
    }
    if (name === "sqrt") {
      if (this.isOp("[")) {
        const index = this.group("[", "]");
        return call("nthRoot", this.argument(), `, ${index}`);
      }
      return call("sqrt", this.argument());
    }
    if (name === "pi") return "pi";
    if (name === "infty") return "Infinity";
    if (FUNCTIONS[name] !== undefined) return call(FUNCTIONS[name], this.functionArgument());
    if (TEXT_WRAPPERS.has(name)) return this.argument();
    throw new LatexError(`unsupported command \\${name}`);
  }
}

/**
 * Translate a LaTeX or plain math answer into a math.js expression string.
 *
 * @throws {LatexError} when the input is not an expression this reader knows.
 * @example
 * ```ts
 * latexToMathjs("2\\sqrt{3}"); // "(2 * sqrt(3))"
 * ```
 */
export function latexToMathjs(input: string): string {
  const reader = new Reader(tokenize(input));
  if (reader.done()) throw new LatexError("empty expression");
  const out = reader.expr();
  if (!reader.done()) throw new LatexError(`unexpected "${reader.peek()!.text}"`);
  return out;
}

/** An equation `lhs = rhs` read as two math.js expressions, or null when there is no single "=". */
export function latexEquationToMathjs(input: string): [string, string] | null {
  const sides = input.split("=");
  if (sides.length !== 2) return null;
  return [latexToMathjs(sides[0]), latexToMathjs(sides[1])];
}
