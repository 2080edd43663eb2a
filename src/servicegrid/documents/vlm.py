"""An engine that sends page images to a vision LLM behind an OpenAI-compatible API."""

from __future__ import annotations

import base64
from collections.abc import Mapping
from typing import Any, Final

import httpx

from servicegrid.clock import SYSTEM_CLOCK, Clock
from servicegrid.documents.doctags import ParsedPage, build_result, parse_page
from servicegrid.documents.engine import ExtractOptions, pdf_title, stamp_metadata
from servicegrid.documents.pdf_input import (
    DEFAULT_MAX_BYTES,
    DEFAULT_MAX_PAGES,
    PageImage,
    open_pdf,
    render_page,
)
from servicegrid.errors import FailedPrecondition, RemoteError
from servicegrid.proto import docling_vlm_service_pb2 as pb
from servicegrid.transports.base import Call, Transport
from servicegrid.transports.http import PhaseTimeouts, error_for_reply
from servicegrid.transports.httpx_compat import json_body
from servicegrid.transports.httpx_transport import HttpxTransport

__all__ = ["DEFAULT_PROMPT", "VLMEngine"]

# The instruction Docling's own VLMs (SmolDocling, granite-docling) were trained on.
DEFAULT_PROMPT: Final = "Convert this page to docling."


class VLMEngine:
    """Renders each selected page to PNG and asks a vision model for its DocTags.

    One ``POST {base_url}/chat/completions`` per page, in page order, without retries.
    Answers in DocTags keep the model's element locations; markdown answers are accepted
    too, with each element's box being the whole page. ``extra_body`` is merged into every
    request (vLLM serving a DocTags model needs ``{"skip_special_tokens": False}``).

    One request per page through the transport seam (``transport``: an httpx one by
    default, or over ``client``, a given ``httpx.Client``).

    Errors: unusable PDF input raises ValidationError before any request; transport
    failures and timeouts raise what the transport maps them to (ConnectError,
    ReadTimeout, ...); a 4xx answer (the endpoint refusing the engine's own request)
    raises FailedPrecondition, other error answers the class the error table gives their
    status; a 200 answer without page content raises RemoteError.
    """

    def __init__(
        self,
        base_url: str,
        model: str,
        *,
        api_key: str | None = None,
        timeout: float = 120.0,
        dpi: int = 144,
        prompt: str = DEFAULT_PROMPT,
        max_tokens: int | None = None,
        extra_body: Mapping[str, Any] | None = None,
        max_bytes: int = DEFAULT_MAX_BYTES,
        max_pages: int = DEFAULT_MAX_PAGES,
        clock: Clock = SYSTEM_CLOCK,
        client: httpx.Client | None = None,
        transport: Transport | None = None,
    ) -> None:
        if timeout <= 0:
            raise ValueError(f"timeout must be > 0, got {timeout}")
        if dpi <= 0:
            raise ValueError(f"dpi must be > 0, got {dpi}")
        self.name = f"vlm:{model}"
        self.url = base_url.rstrip("/") + "/chat/completions"
        self.model = model
        self.timeout = timeout
        self.dpi = dpi
        self.prompt = prompt
        self.max_tokens = max_tokens
        self.extra_body = dict(extra_body or {})
        self.max_bytes = max_bytes
        self.max_pages = max_pages
        self._clock = clock
        self._headers: tuple[tuple[str, str], ...] = (("content-type", "application/json"),)
        if api_key:
            self._headers += (("authorization", f"Bearer {api_key}"),)
        # every phase may take the whole timeout: a vision model thinks for a while
        every_phase = PhaseTimeouts(timeout, timeout, timeout, timeout)
        self._transport: Transport = transport or HttpxTransport(
            timeouts=every_phase, client=client, service=self.name
        )

    def close(self) -> None:
        """Close the HTTP transport (an ``httpx.Client`` passed in stays open)."""
        self._transport.close()

    def __enter__(self) -> VLMEngine:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def process(self, pdf: bytes, *, filename: str, options: ExtractOptions) -> pb.DocTagsResult:
        """Extract the pages ``options`` select; raises ValidationError for unusable input."""
        started = self._clock.now()
        with open_pdf(pdf, max_bytes=self.max_bytes, max_pages=self.max_pages) as document:
            page_count = len(document.pages)
            numbers = options.check_page_range(page_count)
            title = document.metadata.get("Title")
        pages: list[ParsedPage] = []
        for number in numbers:
            image = render_page(pdf, number, dpi=self.dpi)
            answer = self._ask(image)
            pages.append(parse_page(answer, number=number, width=image.width, height=image.height))
        result = build_result(pages, options, fallback_title=pdf_title(title))
        return stamp_metadata(
            result,
            pdf,
            filename=filename,
            page_count=page_count,
            engine=self.name,
            seconds=self._clock.now() - started,
        )

    def _request(self, image: PageImage) -> dict[str, Any]:
        data_url = "data:image/png;base64," + base64.b64encode(image.png).decode("ascii")
        body: dict[str, Any] = {
            "model": self.model,
            "messages": [
                {
                    "role": "user",
                    "content": [
                        {"type": "image_url", "image_url": {"url": data_url}},
                        {"type": "text", "text": self.prompt},
                    ],
                }
            ],
            "temperature": 0.0,
        }
        if self.max_tokens is not None:
            body["max_tokens"] = self.max_tokens
        body.update(self.extra_body)
        return body

    def _ask(self, image: PageImage) -> str:
        """The model's answer for one page."""
        what = f"POST {self.url} (page {image.number})"
        body = json_body(self._request(image))
        call = Call("POST", self.url, self._headers, body, self.timeout, name=what)
        reply = self._transport.send(call)
        if 400 <= reply.status < 500 and reply.status not in (408, 429):
            # the endpoint refused what this engine sent (model name, key, size): not the
            # caller's document, so never INVALID_ARGUMENT
            raise FailedPrecondition(
                f"{what} answered HTTP {reply.status}: {reply.text[:300]}", service=self.name
            )
        if reply.status >= 400:
            raise error_for_reply(call, reply, service=self.name)
        try:
            payload = reply.json()
        except ValueError as exc:
            raise _no_content(what, "a body that is not JSON", self.name) from exc
        return _content(payload, what, self.name)


def _content(payload: Any, what: str, service: str) -> str:
    """The first choice's message text; content may be a string or a list of text parts."""
    choices = payload.get("choices") if isinstance(payload, dict) else None
    if not isinstance(choices, list) or not choices:
        raise _no_content(what, "no choices", service)
    first = choices[0]
    message = first.get("message") if isinstance(first, dict) else None
    content = message.get("content") if isinstance(message, dict) else None
    if isinstance(content, list):
        texts = (part.get("text") for part in content if isinstance(part, dict))
        content = "".join(text for text in texts if isinstance(text, str))
    if not isinstance(content, str) or not content.strip():
        raise _no_content(what, "no message content", service)
    return content


def _no_content(what: str, problem: str, service: str) -> RemoteError:
    return RemoteError(
        f"{what}: the model answered with {problem}; no page content to read",
        service=service,
        details={"problem": problem},
    )
