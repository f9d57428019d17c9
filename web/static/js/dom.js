// dom.js: building elements without ever parsing strings as HTML.

/** el creates an element. attrs: plain attributes, except 'class',
 * 'dataset' (an object) and 'on' (an object of event listeners). Children
 * are nodes or strings; strings become text nodes. */
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value == null || value === false) continue;
    if (key === 'class') node.className = value;
    else if (key === 'dataset') Object.assign(node.dataset, value);
    else if (key === 'on') for (const [type, fn] of Object.entries(value)) node.addEventListener(type, fn);
    else node.setAttribute(key, value === true ? '' : String(value));
  }
  append(node, children);
  return node;
}

function append(node, children) {
  for (const child of children.flat()) {
    if (child == null || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

/** $ finds one element by id, failing loudly if the template lacks it. */
export function $(id) {
  const node = document.getElementById(id);
  if (!node) throw new Error(`chatd: the page has no #${id}`);
  return node;
}
