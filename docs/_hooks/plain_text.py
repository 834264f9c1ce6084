"""MkDocs hook: docstrings are plain text, so ``<n>`` or ``<λ>`` is text, not an HTML tag.

Python-Markdown passes anything shaped like a tag through as raw HTML, and the browser then
hides it: a docstring's ``"n=<n>,lam=<λ>"`` would render as ``"n=,lam="``. This inline
pattern runs before the raw-HTML one and escapes angle-bracketed words that are not HTML
tags the pages use on purpose. Code spans and code blocks are untouched (they escape
already).
"""

from __future__ import annotations

import xml.etree.ElementTree as etree

from markdown import Extension
from markdown.inlinepatterns import InlineProcessor
from markdown.util import AtomicString
from mkdocs.plugins import event_priority

# Tags a page may write on purpose (md_in_html blocks, line breaks, keyboard keys).
HTML_TAGS = "a|abbr|b|br|code|div|em|figure|figcaption|i|img|kbd|p|span|strong|sub|sup"
PATTERN = rf"<(?!/?(?:{HTML_TAGS})\b)(?!!--)(/?[^<>\s`]{{1,40}})>"


class _Escape(InlineProcessor):
    def handleMatch(self, m, data):
        el = etree.Element("span")
        el.text = AtomicString(f"<{m.group(1)}>")
        return el, m.start(0), m.end(0)


class PlainAngleBrackets(Extension):
    def extendMarkdown(self, md):
        # Priority above "html" (90) so the raw-HTML pattern never sees these.
        md.inlinePatterns.register(_Escape(PATTERN, md), "plain_angle_brackets", 95)


@event_priority(100)  # before mkdocstrings reads the extension list
def on_config(config):
    config.markdown_extensions.append(PlainAngleBrackets())
    return config
