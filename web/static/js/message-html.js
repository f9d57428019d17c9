// message-html.js: the one place where HTML from outside reaches the DOM.
//
// Only a message's `html` field is ever parsed, and that field is sanitized by
// the server before it is stored (see PROTOCOL.md). The page never builds
// HTML from `text` and never evaluates anything. The page's CSP requires
// Trusted Types, and this module owns the only policy the CSP allows
// ('chatd-message-html'): any other innerHTML assignment throws.
//
// As a second line of defence the parsed fragment goes through an inert
// <template> (scripts in it never run) and is checked against the small set
// of elements and attributes the server's sanitizer lets through.

const policy = self.trustedTypes
  ? trustedTypes.createPolicy('chatd-message-html', { createHTML: (s) => s })
  : { createHTML: (s) => s };

const ALLOWED = new Set([
  'A', 'B', 'STRONG', 'I', 'EM', 'U', 'S', 'DEL', 'INS', 'MARK', 'SMALL', 'SUB', 'SUP',
  'CODE', 'PRE', 'KBD', 'SAMP', 'BLOCKQUOTE', 'Q', 'P', 'BR', 'HR', 'SPAN', 'DIV',
  'UL', 'OL', 'LI', 'DL', 'DT', 'DD', 'H1', 'H2', 'H3', 'H4', 'H5', 'H6',
  'TABLE', 'THEAD', 'TBODY', 'TFOOT', 'TR', 'TH', 'TD', 'CAPTION', 'ABBR', 'CITE', 'TIME',
]);
const ALLOWED_ATTRS = new Set(['href', 'title', 'rel', 'target', 'datetime', 'lang', 'dir', 'colspan', 'rowspan', 'start', 'cite']);
const SAFE_URL = /^(https?:|mailto:)/i;

/** serverFragment parses already-sanitized server html into a detached
 * fragment, dropping anything outside the expected set. */
export function serverFragment(html) {
  const tpl = document.createElement('template');
  tpl.innerHTML = policy.createHTML(String(html || ''));
  scrub(tpl.content);
  return tpl.content;
}

function scrub(root) {
  for (const node of [...root.querySelectorAll('*')]) {
    if (!ALLOWED.has(node.tagName)) {
      // Unknown elements keep their text, never their markup.
      node.replaceWith(document.createTextNode(node.textContent));
      continue;
    }
    for (const attr of [...node.attributes]) {
      const name = attr.name.toLowerCase();
      if (!ALLOWED_ATTRS.has(name)) node.removeAttribute(attr.name);
    }
    if (node.tagName === 'A') {
      const href = node.getAttribute('href') || '';
      if (!SAFE_URL.test(href.trim())) node.removeAttribute('href');
      // Links leave the chat: new tab, no opener, no referrer.
      node.setAttribute('target', '_blank');
      node.setAttribute('rel', 'nofollow noopener noreferrer');
    }
  }
}

const MENTION = /@([A-Za-z0-9_.-]*[A-Za-z0-9_-])/g;

/** highlightMentions wraps every @name in the text of root in a span, marking
 * the ones that name me. Works on text nodes only, outside links and code. */
export function highlightMentions(root, me) {
  const walker = document.createTreeWalker(root, NodeFilter.SHOW_TEXT, {
    acceptNode(n) {
      return n.parentElement && n.parentElement.closest('a, code, pre, .mention')
        ? NodeFilter.FILTER_REJECT
        : NodeFilter.FILTER_ACCEPT;
    },
  });
  const texts = [];
  for (let n = walker.nextNode(); n; n = walker.nextNode()) texts.push(n);
  const myKey = me.toLowerCase();
  for (const text of texts) {
    const value = text.nodeValue;
    MENTION.lastIndex = 0;
    if (!MENTION.test(value)) continue;
    MENTION.lastIndex = 0;
    const frag = document.createDocumentFragment();
    let at = 0;
    for (const m of value.matchAll(MENTION)) {
      // "me@example.com" is an address, not a mention.
      if (m.index > 0 && /[A-Za-z0-9_.-]/.test(value[m.index - 1])) continue;
      frag.append(value.slice(at, m.index));
      const span = document.createElement('span');
      span.className = m[1].toLowerCase() === myKey ? 'mention mention-me' : 'mention';
      span.textContent = m[0];
      frag.append(span);
      at = m.index + m[0].length;
    }
    if (at === 0) continue;
    frag.append(value.slice(at));
    text.replaceWith(frag);
  }
}

/** mentions reports whether plain text mentions the user by @name. */
export function mentions(text, me) {
  const key = me.toLowerCase();
  for (const m of String(text || '').matchAll(MENTION)) {
    if (m.index > 0 && /[A-Za-z0-9_.-]/.test(text[m.index - 1])) continue;
    if (m[1].toLowerCase() === key) return true;
  }
  return false;
}

/** stripLeadingText removes prefix from the first text in root, if it is
 * there, and reports whether it was. */
export function stripLeadingText(root, prefix) {
  const walker = document.createTreeWalker(root, NodeFilter.SHOW_TEXT);
  for (let n = walker.nextNode(); n; n = walker.nextNode()) {
    if (!n.nodeValue.trim()) continue;
    const v = n.nodeValue.replace(/^\s+/, '');
    if (!v.startsWith(prefix)) return false;
    n.nodeValue = v.slice(prefix.length);
    return true;
  }
  return false;
}
