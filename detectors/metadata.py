"""Claims read from an image's metadata: what generators and cameras wrote. Never proof.

Anyone can write these fields and every upload platform strips them, so a claim found here says
what a file *claims*, and a missing claim says nothing. Read:

* Automatic1111 ``parameters`` (PNG text chunk; EXIF UserComment ``UNICODE\\0`` + UTF-16 in
  JPEG/WebP; a JPEG comment), fakestudio's own copy of it (``Version: fakestudio ...``);
* ComfyUI ``prompt`` / ``workflow`` JSON (PNG text chunks; EXIF Make/Model/other string tags
  prefixed ``workflow:`` / ``prompt:`` in WebP and JPEG): checkpoint, UNet, LoRA and other
  model names, the first positive prompt;
* InvokeAI ``invokeai_metadata`` (v3), ``sd-metadata`` (v2), ``Dream`` (v1);
* NovelAI (``Software`` = NovelAI, ``Comment`` JSON, ``Source``, ``Description``);
* IPTC ``DigitalSourceType`` and ``CreatorTool`` in XMP (PNG iTXt ``XML:com.adobe.xmp``,
  JPEG APP1, WebP XMP chunk);
* camera EXIF: Make, Model, DateTimeOriginal, GPS present or not, orientation, Software.
  Malformed EXIF is reported in ``problems``, never raised.

The same readers serve every picture format ``detectors.image_io`` opens: HEIC/HEIF
(pillow-heif) and AVIF expose their EXIF and XMP items as Pillow's ``info["exif"]`` /
``info["xmp"]``, and a DNG's (or another TIFF-based raw's) IFD0 EXIF and XMP tag 700 are put
there by ``image_io`` (camera make and model, the IPTC digital source type).

Bounded: text over ``MAX_PARSE`` characters is not parsed, strings kept in the report are
clipped to ``MAX_TEXT`` characters, at most ``MAX_ITEMS`` names per list. Imports neither
fakestudio nor torch.
"""

from __future__ import annotations

import json
import re
import warnings
from dataclasses import dataclass, field, fields
from typing import Any
from xml.sax.handler import ContentHandler

from PIL import Image

from detectors.image_io import exif_of

MAX_TEXT = 500  # any string kept in a claim
MAX_PARSE = 4 * 1024 * 1024  # JSON / text larger than this is noted, not parsed
MAX_XMP = 1024 * 1024
MAX_ITEMS = 50

IPTC_PREFIX = "http://cv.iptc.org/newscodes/digitalsourcetype/"
#: IPTC digital source types that say "made by an AI / algorithm".
AI_SOURCE_TYPES = frozenset(
    {"trainedAlgorithmicMedia", "compositeWithTrainedAlgorithmicMedia", "algorithmicMedia"}
)
#: Software names that only AI image generators write (lower-case substring -> tool name).
AI_SOFTWARE = {
    "fakestudio": "fakestudio",
    "novelai": "NovelAI",
    "comfyui": "ComfyUI",
    "invokeai": "InvokeAI",
    "automatic1111": "Automatic1111",
    "stable diffusion": "Stable Diffusion",
    "midjourney": "Midjourney",
    "dall-e": "DALL-E",
    "dall\u00b7e": "DALL-E",
    "adobe firefly": "Adobe Firefly",
    "leonardo.ai": "Leonardo.Ai",
    "fooocus": "Fooocus",
    "draw things": "Draw Things",
    "diffusionbee": "DiffusionBee",
}

EXIF_IFD, GPS_IFD = 0x8769, 0x8825
T_MAKE, T_MODEL, T_ORIENTATION, T_SOFTWARE, T_DATETIME = 0x010F, 0x0110, 0x0112, 0x0131, 0x0132
T_DESCRIPTION, T_ARTIST = 0x010E, 0x013B
T_DATETIME_ORIGINAL, T_USER_COMMENT, T_LENS_MODEL = 0x9003, 0x9286, 0xA434

MAX_SETTINGS_LINE = 64 * 1024  # an A1111 settings line longer than this is cut


@dataclass
class MetadataReport:
    """Every claim found, the camera EXIF, XMP, and anything malformed.

    ``claims``: dicts with ``tool`` (Automatic1111, ComfyUI, InvokeAI, NovelAI, fakestudio,
    IPTC XMP, software tag, camera), ``kind`` (generator | xmp | software | camera), ``where``
    (the chunk or tag), ``ai`` (whether the claim says an AI made the image), ``summary`` (one
    line) and ``fields`` (bounded details).
    """

    claims: list[dict] = field(default_factory=list)
    camera: dict | None = None
    xmp: dict | None = None
    software: str | None = None
    keys: list[str] = field(default_factory=list)  # metadata keys present (names only)
    problems: list[str] = field(default_factory=list)

    @property
    def ai_claimed(self) -> bool:
        return any(c["ai"] for c in self.claims)

    @property
    def ai_tools(self) -> list[str]:
        return _unique(c["tool"] for c in self.claims if c["ai"])

    def to_dict(self) -> dict:
        d = {f.name: getattr(self, f.name) for f in fields(self)}
        d["ai_claimed"] = self.ai_claimed
        d["ai_tools"] = self.ai_tools
        return d


def read_metadata(
    image: Image.Image,
    open_warnings: list[str] | None = None,
    extra_texts: dict[str, str] | None = None,
) -> MetadataReport:
    """Read every claim from an opened Pillow image; no pixel is decoded. Call it after the
    image was loaded to also see the PNG chunks that follow the pixel data.
    ``open_warnings``: what Pillow warned about while opening the file (``info["warnings"]``
    from ``detectors.image_io.open_image``: a JPEG's EXIF is parsed then), reported as problems.
    ``extra_texts``: PNG text chunks Pillow dropped (an iTXt that is not valid UTF-8), decoded
    with replacement characters by ``detectors.containers``; read like the others."""
    rep = MetadataReport()
    try:
        _read(image, rep, extra_texts or {})
    except Exception as e:  # noqa: BLE001 - a hostile file must never crash the verifier
        rep.problems.append(_clip(f"metadata could not be read: {type(e).__name__}: {e}"))
    for w in open_warnings or []:
        problem = _clip(f"malformed EXIF: {w}")
        if problem not in rep.problems:
            rep.problems.append(problem)
    return rep


def read_metadata_file(path) -> MetadataReport:
    """Open ``path`` with the guards of ``detectors.image_io`` and read its metadata."""
    from detectors.image_io import open_image

    im, info = open_image(path)
    if im is None:
        return MetadataReport(problems=[info["reason"]])
    with im:
        return read_metadata(im, info.get("warnings"))


def is_ai_source_type(value: str | None) -> bool:
    """Whether an IPTC DigitalSourceType (URL or bare code) says AI/algorithmic media."""
    if not value:
        return False
    return str(value).rstrip("/").rsplit("/", 1)[-1] in AI_SOURCE_TYPES


def parse_a1111(text: str) -> dict:
    """Automatic1111's ``parameters`` text -> prompt, negative prompt and settings (bounded)."""
    lines = text.strip().split("\n")
    settings_line = ""
    if lines and _A1111_SETTINGS(lines[-1]):
        settings_line = lines.pop()
    prompt, negative, in_negative = [], [], False
    for line in lines:
        if line.startswith("Negative prompt:"):
            in_negative = True
            line = line[len("Negative prompt:") :].strip()
        (negative if in_negative else prompt).append(line)
    settings: dict[str, str] = {}
    for key, value in a1111_settings(settings_line[:MAX_SETTINGS_LINE]):
        if len(settings) >= MAX_ITEMS:
            break
        settings[_clip(key, 60)] = _clip(value)
    return {
        "prompt": _clip("\n".join(prompt).strip()) or None,
        "negative_prompt": _clip("\n".join(negative).strip()) or None,
        "settings": settings,
    }


def a1111_settings(line: str) -> list[tuple[str, str]]:
    """``Key: value, Key 2: "quoted, value", ...`` -> [(key, value)], in one linear pass (a
    backtracking regex here took seconds on a hostile line). A key is the longest run of word
    characters, spaces, ``-`` and ``/`` before a colon; a value runs to the next comma, or is a
    double-quoted string with backslash escapes."""
    out: list[tuple[str, str]] = []
    pos, n = 0, len(line)
    while pos < n:
        colon = line.find(":", pos)
        if colon < 0:
            break
        k = colon
        while k > pos and (line[k - 1].isalnum() or line[k - 1] in "_ -/"):
            k -= 1
        key = line[k:colon].strip()
        while key and not (key[0].isalnum() or key[0] == "_"):
            key = key[1:].lstrip()
        j = colon + 1
        while j < n and line[j].isspace():
            j += 1
        end = -1
        if j < n and line[j] == '"':
            q = j + 1
            while q < n and line[q] != '"':
                q += 2 if line[q] == "\\" else 1
            if q < n:
                end = q + 1
        if end > 0:
            value = line[j + 1 : end - 1]
            comma = line.find(",", end)
        else:
            comma = line.find(",", j)
            value = line[j : comma if comma >= 0 else n].strip()
        if len(key) >= 2:
            out.append((key, value))
        pos = comma + 1 if comma >= 0 else n
    return out


def decode_user_comment(raw: Any) -> str | None:
    """EXIF UserComment: 8-byte charset prefix then text (UNICODE: UTF-16, either byte order)."""
    if isinstance(raw, str):
        return raw
    if not isinstance(raw, (bytes, bytearray)) or len(raw) < 8:
        return None
    prefix, body = bytes(raw[:8]), bytes(raw[8:])
    if prefix == b"UNICODE\0":
        if body[:2] in (b"\xfe\xff", b"\xff\xfe"):
            return body.decode("utf-16", "replace")
        even_zeros = body[0::2].count(0)
        odd_zeros = body[1::2].count(0)
        return body.decode("utf-16-be" if even_zeros >= odd_zeros else "utf-16-le", "replace")
    if prefix in (b"ASCII\0\0\0", b"\0" * 8):
        return body.decode("utf-8", "replace").rstrip("\0 ")
    if prefix == b"JIS\0\0\0\0\0":
        return body.decode("shift_jis", "replace")
    return None


# --- internals ------------------------------------------------------------------------------


def _A1111_SETTINGS(line: str) -> bool:  # noqa: N802 - reads like a constant predicate
    return "Steps:" in line and ("Sampler:" in line or "Seed:" in line)


def _read(im: Image.Image, rep: MetadataReport, extra_texts: dict[str, str]) -> None:
    info = dict(im.info or {})
    rep.keys = [_clip(str(k), 60) for k in list(info)[:MAX_ITEMS]]
    texts = {k: v for k, v in info.items() if isinstance(k, str) and isinstance(v, str)}
    for key, value in list(extra_texts.items())[:MAX_ITEMS]:
        if key not in texts and isinstance(value, str):
            texts[key] = value
            rep.keys.append(_clip(key, 60))
            if "\ufffd" in value:
                rep.problems.append(
                    _clip(
                        f"text chunk {key!r} is not valid UTF-8: shown with replacement characters"
                    )
                )
    exif, exif_ifd, gps = _exif(im, info, rep)

    # --- generators' own chunks ---
    if "parameters" in texts:
        _a1111(rep, texts["parameters"], f"{im.format or 'image'} text chunk 'parameters'")
    comment = info.get("comment")
    if isinstance(comment, (bytes, str)):
        text = comment.decode("utf-8", "replace") if isinstance(comment, bytes) else comment
        if _A1111_SETTINGS(text[:MAX_PARSE]):
            _a1111(rep, text, "JPEG comment")
    user_comment = decode_user_comment(exif_ifd.get(T_USER_COMMENT))
    if user_comment and _A1111_SETTINGS(user_comment[:MAX_PARSE]):
        _a1111(rep, user_comment, "EXIF UserComment")

    comfy_prompt, comfy_workflow, comfy_where = texts.get("prompt"), texts.get("workflow"), []
    if comfy_prompt is not None:
        comfy_where.append("text chunk 'prompt'")
    if comfy_workflow is not None:
        comfy_where.append("text chunk 'workflow'")
    for tag, value in list(exif.items()) + list(exif_ifd.items()):
        if not isinstance(value, str):
            continue
        if value.startswith("prompt:") and comfy_prompt is None:
            comfy_prompt = value[len("prompt:") :]
            comfy_where.append(f"EXIF {_tag_name(tag)} 'prompt:'")
        elif value.startswith("workflow:") and comfy_workflow is None:
            comfy_workflow = value[len("workflow:") :]
            comfy_where.append(f"EXIF {_tag_name(tag)} 'workflow:'")
    if comfy_prompt is not None or comfy_workflow is not None:
        _comfy(rep, comfy_prompt, comfy_workflow, ", ".join(comfy_where))

    for key in ("invokeai_metadata", "sd-metadata", "Dream", "invokeai_graph"):
        if key in texts:
            _invoke(rep, key, texts[key])
            break

    software = texts.get("Software") or _str(exif.get(T_SOFTWARE))
    rep.software = _clip(software) if software else None
    if software and software.strip().lower().startswith("novelai"):
        _novelai(rep, texts)

    # --- XMP ---
    xmp = info.get("xmp") or texts.get("XML:com.adobe.xmp")
    if xmp:
        _xmp(rep, xmp)

    # --- software tags that only AI tools write, when no richer claim named the tool ---
    named = {c["tool"].lower() for c in rep.claims}
    for where, value in (
        ("Software tag", software),
        ("XMP CreatorTool", (rep.xmp or {}).get("creator_tool")),
    ):
        tool = _ai_software(value)
        if tool and tool.lower() not in named:
            rep.claims.append(
                _claim(
                    tool,
                    "software",
                    where,
                    True,
                    f"{where} names {value!r}",
                    {"value": _clip(value)},
                )
            )
            named.add(tool.lower())

    # --- camera ---
    _camera(rep, exif, exif_ifd, gps)


def _exif(im: Image.Image, info: dict, rep: MetadataReport):
    exif: dict = {}
    exif_ifd: dict = {}
    gps: dict = {}
    raw = info.get("exif")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            e = exif_of(im)
            exif = dict(e)
            if EXIF_IFD in e or e.get_ifd(EXIF_IFD):
                exif_ifd = dict(e.get_ifd(EXIF_IFD))
            if GPS_IFD in e:
                gps = dict(e.get_ifd(GPS_IFD))
        except Exception as err:  # noqa: BLE001
            rep.problems.append(_clip(f"malformed EXIF: {type(err).__name__}: {err}"))
    for w in caught[:5]:
        rep.problems.append(_clip(f"malformed EXIF: {w.message}"))
    if isinstance(raw, (bytes, bytearray)) and len(raw) > 14 and not exif and not exif_ifd:
        rep.problems.append(f"an EXIF block of {len(raw)} bytes is present but could not be parsed")
    return exif, exif_ifd, gps


def _a1111(rep: MetadataReport, text: str, where: str) -> None:
    if any(c["where"] == where for c in rep.claims):
        return
    if len(text) > MAX_PARSE:
        rep.claims.append(
            _claim(
                "Automatic1111",
                "generator",
                where,
                True,
                "generation parameters (too large to parse)",
                {},
            )
        )
        return
    parsed = parse_a1111(text)
    s = parsed["settings"]
    version = s.get("Version", "")
    tool = "fakestudio" if version.lower().startswith("fakestudio") else "Automatic1111"
    fields = {
        "prompt": parsed["prompt"],
        "negative_prompt": parsed["negative_prompt"],
        "model": s.get("Model"),
        "model_hash": s.get("Model hash"),
        "sampler": s.get("Sampler"),
        "steps": s.get("Steps"),
        "cfg_scale": s.get("CFG scale"),
        "seed": s.get("Seed"),
        "size": s.get("Size"),
        "loras": s.get("Lora hashes"),
        "version": version or None,
        "settings": s,
    }
    model = s.get("Model") or s.get("Model hash") or "an unnamed model"
    summary = f"{tool} generation parameters (model {model}"
    summary += f", {s['Steps']} steps" if s.get("Steps") else ""
    summary += ")"
    rep.claims.append(_claim(tool, "generator", where, True, summary, _drop_none(fields)))


_MODEL_KEYS = {
    "ckpt_name": "checkpoints",
    "unet_name": "checkpoints",
    "model_name": "checkpoints",
    "lora_name": "loras",
    "hypernetwork_name": "others",
    "vae_name": "others",
    "control_net_name": "others",
    "clip_name": "others",
    "clip_name1": "others",
    "clip_name2": "others",
    "upscale_model": "others",
    "style_model_name": "others",
}


def _comfy(
    rep: MetadataReport, prompt_json: str | None, workflow_json: str | None, where: str
) -> None:
    models: dict[str, list[str]] = {"checkpoints": [], "loras": [], "others": []}
    prompts: list[str] = []
    node_types: list[str] = []
    notes: list[str] = []
    prompt = _json(prompt_json, notes, "prompt")
    if isinstance(prompt, dict):
        for node in list(prompt.values())[:2000]:
            if not isinstance(node, dict):
                continue
            ctype = str(node.get("class_type", ""))
            node_types.append(ctype)
            inputs = node.get("inputs") if isinstance(node.get("inputs"), dict) else {}
            for key, value in inputs.items():
                if key in _MODEL_KEYS and isinstance(value, str):
                    models[_MODEL_KEYS[key]].append(_clip(value, 200))
            if ctype.startswith("CLIPTextEncode") and isinstance(inputs.get("text"), str):
                if inputs["text"].strip():
                    prompts.append(_clip(inputs["text"]))
    workflow = _json(workflow_json, notes, "workflow")
    if isinstance(workflow, dict) and isinstance(workflow.get("nodes"), list):
        for node in workflow["nodes"][:2000]:
            if not isinstance(node, dict):
                continue
            ntype = str(node.get("type", ""))
            node_types.append(ntype)
            if prompt is None and ("Loader" in ntype or "Checkpoint" in ntype):
                for v in node.get("widgets_values") or []:
                    if isinstance(v, str) and v.endswith(
                        (".safetensors", ".ckpt", ".pt", ".bin", ".gguf")
                    ):
                        cat = (
                            "loras"
                            if "Lora" in ntype
                            else "checkpoints"
                            if "Checkpoint" in ntype or "UNET" in ntype
                            else "others"
                        )
                        models[cat].append(_clip(v, 200))
    models = {k: _unique(v)[:MAX_ITEMS] for k, v in models.items() if v}
    main = (models.get("checkpoints") or ["an unnamed model"])[0]
    summary = f"ComfyUI workflow (model {main}"
    if models.get("loras"):
        summary += f", LoRA {', '.join(models['loras'][:3])}"
    summary += ")"
    fields = {
        "models": models,
        "prompt": prompts[0] if prompts else None,
        "node_count": len(node_types),
        "node_types": _unique(node_types)[:MAX_ITEMS],
        "notes": notes,
    }
    rep.claims.append(_claim("ComfyUI", "generator", where, True, summary, _drop_none(fields)))


def _invoke(rep: MetadataReport, key: str, text: str) -> None:
    notes: list[str] = []
    fields: dict[str, Any] = {"chunk": key}
    if key == "Dream":
        fields["command"] = _clip(text)
        m = re.match(r'\s*"([^"]*)"', text)
        fields["prompt"] = _clip(m.group(1)) if m else None
        summary = "InvokeAI (v1 'Dream') generation command"
    else:
        data = _json(text, notes, key)
        model = None
        if isinstance(data, dict):
            m = data.get("model")
            if isinstance(m, dict):
                model = m.get("model_name") or m.get("name")
            elif isinstance(m, str):
                model = data.get("model_weights") or data.get("model_id") or m
            img = data.get("image") if isinstance(data.get("image"), dict) else {}
            prompt = data.get("positive_prompt")
            if prompt is None and isinstance(img.get("prompt"), list) and img["prompt"]:
                first = img["prompt"][0]
                prompt = first.get("prompt") if isinstance(first, dict) else first
            fields.update(
                model=_clip(model) if isinstance(model, str) else None,
                prompt=_clip(prompt) if isinstance(prompt, str) else None,
                seed=data.get("seed", img.get("seed")),
                steps=data.get("steps", img.get("steps")),
                scheduler=_clip(str(data.get("scheduler", img.get("sampler", ""))) or "") or None,
                generation_mode=_clip(data.get("generation_mode"))
                if isinstance(data.get("generation_mode"), str)
                else None,
                app_version=_clip(data.get("app_version"))
                if isinstance(data.get("app_version"), str)
                else None,
            )
        fields["notes"] = notes
        summary = f"InvokeAI generation metadata (model {model or 'unnamed'})"
    rep.claims.append(
        _claim("InvokeAI", "generator", f"text chunk '{key}'", True, summary, _drop_none(fields))
    )


def _novelai(rep: MetadataReport, texts: dict) -> None:
    notes: list[str] = []
    comment = _json(texts.get("Comment"), notes, "Comment")
    fields: dict[str, Any] = {
        "source": _clip(texts.get("Source")),
        "prompt": _clip(texts.get("Description")),
        "title": _clip(texts.get("Title")),
        "notes": notes,
    }
    if isinstance(comment, dict):
        for k in ("steps", "sampler", "seed", "scale", "strength", "noise"):
            if isinstance(comment.get(k), (str, int, float)):
                fields[k] = _clip(comment[k]) if isinstance(comment[k], str) else comment[k]
    source = texts.get("Source") or "NovelAI"
    rep.claims.append(
        _claim(
            "NovelAI",
            "generator",
            "text chunks 'Software', 'Comment'",
            True,
            f"NovelAI generation metadata ({_clip(source, 80)})",
            _drop_none(fields),
        )
    )


def _xmp(rep: MetadataReport, xmp: Any) -> None:
    if isinstance(xmp, (bytes, bytearray)):
        size = len(xmp)
        text = bytes(xmp[:MAX_XMP]).decode("utf-8", "replace")
    else:
        size = len(str(xmp))
        text = str(xmp)[:MAX_XMP]
    if size > MAX_XMP:
        rep.xmp = {"digital_source_type": None, "creator_tool": None}
        rep.problems.append(f"XMP packet of {size} bytes is over {MAX_XMP} bytes: not parsed")
        return
    try:
        dst, creator = parse_xmp(text)
    except XmpError as e:
        rep.xmp = {"digital_source_type": None, "creator_tool": None}
        rep.problems.append(_clip(f"XMP packet is not well-formed XML, not parsed ({e})"))
        return
    dst = dst.strip() if dst else None
    creator = creator.strip() if creator else None
    rep.xmp = {"digital_source_type": _clip(dst), "creator_tool": _clip(creator)}
    if dst:
        ai = is_ai_source_type(dst)
        code = dst.rstrip("/").rsplit("/", 1)[-1]
        rep.claims.append(
            _claim(
                "IPTC XMP",
                "xmp",
                "XMP Iptc4xmpExt:DigitalSourceType",
                ai,
                f"XMP says the digital source type is {_clip(code, 100)}",
                {"digital_source_type": _clip(dst), "creator_tool": _clip(creator)},
            )
        )


class XmpError(ValueError):
    """An XMP packet that is not well-formed XML, or that uses a DTD or entities."""


def parse_xmp(text: str) -> tuple[str | None, str | None]:
    """(IPTC DigitalSourceType, xmp:CreatorTool) of an XMP packet, read with a streaming XML
    parser that refuses DTDs, entity declarations and external references (``defusedxml``),
    in time linear in the packet's size. Prefixes are matched by local name, so an XMP whose
    writer forgot a namespace declaration still reads. Raises ``XmpError`` for bad XML."""
    import xml.sax

    from defusedxml import DefusedXmlException
    from defusedxml.sax import parseString

    start, end = text.find("<"), text.rfind(">")
    if start < 0 or end < start:
        raise XmpError("no XML element")
    handler = _XmpHandler()
    try:
        parseString(
            text[start : end + 1].encode("utf-8", "replace"),
            handler,
            forbid_dtd=True,
            forbid_entities=True,
            forbid_external=True,
        )
    except _XmpDone:
        pass
    except (xml.sax.SAXException, DefusedXmlException, ValueError) as e:
        raise XmpError(f"{type(e).__name__}: {_clip(str(e), 120)}") from None
    return handler.dst, handler.creator


class _XmpDone(Exception):
    pass


def _local(name: str) -> str:
    return name.rsplit(":", 1)[-1]


class _XmpHandler(ContentHandler):
    """Collects the first DigitalSourceType and CreatorTool, as attributes of any element,
    as element text (bounded) or as an ``rdf:resource``."""

    def __init__(self):
        super().__init__()
        self.dst: str | None = None
        self.creator: str | None = None
        self._in: str | None = None  # "dst" or "creator" while inside such an element
        self._text: list[str] = []
        self._size = 0

    def startElement(self, name, attrs):  # noqa: N802 - SAX API
        for key in attrs.getNames():
            local = _local(key)
            if local == "DigitalSourceType" and self.dst is None:
                self.dst = attrs.getValue(key)[:MAX_TEXT]
            elif local == "CreatorTool" and self.creator is None:
                self.creator = attrs.getValue(key)[:MAX_TEXT]
        local = _local(name)
        if local in ("DigitalSourceType", "CreatorTool"):
            which = "dst" if local == "DigitalSourceType" else "creator"
            if getattr(self, which) is None:
                resource = next(
                    (attrs.getValue(k) for k in attrs.getNames() if _local(k) == "resource"), None
                )
                if resource:
                    setattr(self, which, resource[:MAX_TEXT])
                else:
                    self._in, self._text, self._size = which, [], 0

    def characters(self, content):
        if self._in and self._size < MAX_TEXT:
            self._text.append(content)
            self._size += len(content)

    def endElement(self, name):  # noqa: N802 - SAX API
        local = _local(name)
        if self._in and local in ("DigitalSourceType", "CreatorTool"):
            value = "".join(self._text).strip()[:MAX_TEXT]
            if value and getattr(self, self._in) is None:
                setattr(self, self._in, value)
            self._in = None
        if self.dst is not None and self.creator is not None:
            raise _XmpDone


def _camera(rep: MetadataReport, exif: dict, exif_ifd: dict, gps: dict) -> None:
    make = _str(exif.get(T_MAKE))
    model = _str(exif.get(T_MODEL))
    for v in (make, model):
        if v and v.startswith(("workflow:", "prompt:")):  # ComfyUI abuses these tags
            make = model = None
    when = _str(exif_ifd.get(T_DATETIME_ORIGINAL)) or _str(exif.get(T_DATETIME))
    orientation = exif.get(T_ORIENTATION)
    has_gps = bool(gps) and any(k in gps for k in (1, 2, 3, 4))
    lens = _str(exif_ifd.get(T_LENS_MODEL))
    if not (make or model):
        if when or has_gps or orientation not in (None, 1):
            rep.camera = _drop_none(
                {
                    "make": None,
                    "model": None,
                    "datetime_original": when,
                    "gps": has_gps,
                    "orientation": _int(orientation),
                }
            )
        return
    rep.camera = _drop_none(
        {
            "make": make,
            "model": model,
            "lens": lens,
            "datetime_original": when,
            "gps": has_gps,
            "orientation": _int(orientation),
            "software": _clip(_str(exif.get(T_SOFTWARE))),
        }
    )
    name = " ".join(
        x for x in (make, model) if x and not (model and make and model.startswith(make))
    )
    if make and model and model.startswith(make):
        name = model
    summary = f"camera EXIF says {name}"
    if when:
        summary += f", taken {when}"
    if has_gps:
        summary += ", with GPS position"
    rep.claims.append(
        _claim("camera EXIF", "camera", "EXIF Make/Model", False, summary, dict(rep.camera))
    )


def _claim(tool: str, kind: str, where: str, ai: bool, summary: str, fields: dict) -> dict:
    return {
        "tool": tool,
        "kind": kind,
        "where": where,
        "ai": bool(ai),
        "summary": _clip(summary),
        "fields": fields,
    }


def _json(text: str | None, notes: list[str], name: str):
    if text is None:
        return None
    if len(text) > MAX_PARSE:
        notes.append(f"{name}: {len(text)} characters, too large to parse")
        return None
    try:
        return json.loads(text)
    except (ValueError, RecursionError) as e:
        notes.append(_clip(f"{name}: not valid JSON ({type(e).__name__})"))
        return None


def _ai_software(value: str | None) -> str | None:
    if not value:
        return None
    low = value.lower()
    return next((tool for name, tool in AI_SOFTWARE.items() if name in low), None)


def _tag_name(tag: int) -> str:
    from PIL.ExifTags import TAGS

    return TAGS.get(tag, f"0x{tag:04x}")


def _str(v: Any) -> str | None:
    if isinstance(v, bytes):
        v = v.decode("utf-8", "replace")
    if not isinstance(v, str):
        return None
    v = v.replace("\0", "").strip()
    return _clip(v) if v else None


def _int(v: Any) -> int | None:
    try:
        return int(v) if v is not None else None
    except (TypeError, ValueError):
        return None


def _clip(v: Any, limit: int = MAX_TEXT):
    if isinstance(v, str) and len(v) > limit:
        return v[:limit] + "..."
    return v


def _drop_none(d: dict) -> dict:
    return {k: v for k, v in d.items() if v is not None and v != [] and v != {}}


def _unique(items) -> list:
    seen, out = set(), []
    for x in items:
        if x not in seen:
            seen.add(x)
            out.append(x)
    return out
