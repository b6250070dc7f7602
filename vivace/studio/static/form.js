// A form generated from a JSON Schema object: fields for strings, numbers, integers,
// booleans and enums; JSON text for arrays and objects. read() returns the value.
import { h } from "./ui.js";

export function schemaForm(schema, { prefix = "f" } = {}) {
  const props = (schema && schema.properties) || {};
  const required = new Set((schema && schema.required) || []);
  const readers = {};
  const fields = Object.entries(props).map(([name, p]) => {
    const id = `${prefix}-${name}`;
    const label = h("label", { for: id }, name, required.has(name) ? h("span", { class: "req" }, " *") : null);
    const help = p.description ? h("small", { class: "muted" }, p.description) : null;
    let input;
    const type = Array.isArray(p.type) ? p.type.find((t) => t !== "null") : p.type;
    if (p.enum) {
      input = h("select", { id, name }, p.enum.map((v) => h("option", { value: JSON.stringify(v) }, String(v))));
      readers[name] = () => JSON.parse(input.value);
    } else if (type === "boolean") {
      input = h("input", { id, name, type: "checkbox", checked: p.default === true });
      readers[name] = () => input.checked;
    } else if (type === "integer" || type === "number") {
      input = h("input", { id, name, type: "number", step: type === "integer" ? "1" : "any", value: p.default ?? "" });
      readers[name] = () => (input.value === "" ? undefined : Number(input.value));
    } else if (type === "object" || type === "array" || !type) {
      input = h("textarea", { id, name, rows: 3, placeholder: type === "array" ? "[ ]" : "{ }" });
      if (p.default !== undefined) input.value = JSON.stringify(p.default);
      readers[name] = () => (input.value.trim() === "" ? undefined : JSON.parse(input.value));
    } else {
      input = h("input", { id, name, type: "text", value: p.default ?? "" });
      readers[name] = () => (input.value === "" ? undefined : input.value);
    }
    return h("div", { class: "field" }, label, input, help);
  });
  const el = h("div", { class: "schema-form" }, fields.length ? fields : h("p", { class: "muted" }, "No arguments."));
  return {
    el,
    read() {
      const out = {};
      for (const [name, read] of Object.entries(readers)) {
        const v = read();
        if (v !== undefined) out[name] = v;
      }
      return out;
    },
  };
}
