"""The trigger token: syntax, common words, and whether the base's tokenizer keeps it whole."""

from __future__ import annotations

from pathlib import Path

from fakestudio.dataset.photos import scrub
from fakestudio.errors import UserError

# A few hundred common English words (and words that already mean something to Stable
# Diffusion). A trigger token that is one of them fights the meaning the model already has.
COMMON_WORDS = frozenset(
    """
    a about above across act add after again against age ago air all almost alone along
    already also always am among an and animal another answer any anything are area arm army
    around art as ask at away baby back bad bag ball bank bar base be beach bear beautiful bed
    before begin behind believe best better between big bird black blue board boat body book
    born both box boy bread break bring brother brown build building business but buy by call
    came can car card care carry case cat cause center chair change child children city class
    clear close cloud cold color come common cool could country course cover cry cut dad dark
    day dead dear death deep did die different do doctor does dog door down draw dream dress
    drink drive dry during each ear early earth east easy eat egg end enough even evening ever
    every eye face fact fall family far farm fast father fear feel feet few field fight figure
    fill find fine fire first fish five floor flower fly follow food foot for force forest form
    four free friend from front full fun game garden gave get girl give glass go god gold good
    got great green ground group grow guy had hair half hand happy hard has hat have he head
    hear heart heavy help her here high hill him his hold home hope horse hot hour house how
    human hundred ice idea if in inside into is island it its job just keep key kid kind king
    knew know lady lake land large last late laugh lead learn leave left leg let letter life
    light like line lion list little live long look lord lost lot love low made make man many
    map mark may me mean men might mind miss model moment money month moon more morning most
    mother mountain mouth move much music must my name near need never new next nice night no
    north nose not note nothing now number of off office old on once one only open or order
    other our out over own page paint paper park part party pass past people person photo
    picture piece place plan plant play point poor portrait power present pretty queen quick
    quiet rain ran read ready real red rest rich ride right ring river road rock room rose round
    run sad said same sat saw say school sea second see seem self sell send set seven shape she
    ship shirt shoe short should show side sign silver simple sing sister sit six size skin sky
    sleep slow small smile snow so soft some son song soon sound south space speak special
    spring stand star start stay step still stone stop store story street strong study style
    such summer sun sure table take talk tall tea teacher team tell ten than that the their them
    then there these they thing think this those three through time to today together told too
    took top town tree true try turn two under up upon us use very voice wait walk wall want war
    warm was watch water way we wear weather week well went were west what wheel when where
    which while white who whole why wide wife wild will wind window winter with woman women wood
    word work world would write year yellow yes yet you young your
    sks
    """.split()
)
# Characters Automatic1111 reads as prompt syntax (emphasis, alternation, LoRA tags, weights).
PROMPT_SYNTAX = set("()[]{}<>:|,\\")


def check_token(token: str) -> str:
    token = token.strip() if token else ""
    if not token:
        raise UserError("--token must not be empty: choose a rare word, e.g. ben0a")
    if any(c.isspace() for c in token):
        raise UserError(f"--token {token!r} must be one word (no spaces), e.g. ben0a")
    bad = sorted(set(token) & PROMPT_SYNTAX)
    if bad:
        raise UserError(
            f"--token {token!r} contains {''.join(bad)!r}, which Automatic1111 reads as prompt "
            "syntax; use letters and digits, e.g. ben0a"
        )
    return token


def token_warnings(token: str, tokenizer=None, tokenizer_name: str = "") -> list[str]:
    """Why `token` may be a poor trigger word: a common word, or a whole token already known to
    the tokenizer (it then carries a meaning the LoRA must fight)."""
    out = []
    if token.lower() in COMMON_WORDS:
        out.append(
            f"the token {token!r} is a common word: the base model already has a meaning for it; "
            "a rare made-up word (e.g. ben0a, ohwx) trains faster and leaks less"
        )
    if tokenizer is not None and is_whole_token(tokenizer, token):
        out.append(
            f"the token {token!r} is already one whole token in the {tokenizer_name or 'base'} "
            "tokenizer's vocabulary: it carries a meaning the LoRA must overwrite"
        )
    return out


def is_whole_token(tokenizer, token: str) -> bool:
    """True when `token` encodes to a single vocabulary entry longer than one byte/character,
    or is in the vocabulary as `token</w>` (CLIP's end-of-word form)."""
    try:
        vocab = tokenizer.get_vocab()
    except Exception:
        vocab = {}
    if f"{token.lower()}</w>" in vocab and len(token) > 1:
        return True
    try:
        ids = tokenizer(token, add_special_tokens=False)["input_ids"]
    except Exception:
        return False
    if len(ids) != 1:
        return False
    piece = str(tokenizer.convert_ids_to_tokens(ids[0]))
    return len(piece.removesuffix("</w>")) > 1


def load_check_tokenizer(base: str | None = None, tokenizer: str | Path | None = None):
    """(tokenizer or None, display name, note or None) for the whole-token check.

    `--tokenizer DIR` wins; else the base's: the tiny base (its folder when built, else the same
    byte-level vocabulary built in memory, without torch), a diffusers folder's tokenizer/, a
    tokenizer folder, a cached hub id; a single-file checkpoint uses an installed CLIP vocabulary
    if there is one. A base that does not exist is a UserError."""
    from fakestudio.single_file import (
        clip_tokenizer_from_bpe,
        installed_clip_bpe,
        is_tokenizer_dir,
    )

    def from_dir(folder: Path):
        from transformers import CLIPTokenizer

        try:
            return CLIPTokenizer.from_pretrained(str(folder), local_files_only=True)
        except Exception as e:
            raise UserError(f"{folder}: cannot read the tokenizer ({scrub(str(e))})") from e

    def pick(folder: Path):
        for cand in (folder / "tokenizer", folder):
            if is_tokenizer_dir(cand):
                return cand
        return None

    if tokenizer is not None:
        folder = Path(tokenizer).expanduser()
        found = pick(folder)
        if found is None:
            raise UserError(
                f"--tokenizer {folder}: no CLIP tokenizer there (vocab.json + merges.txt)"
            )
        return from_dir(found), folder.name, None
    from fakestudio.models import default_base

    base = base or default_base()
    if base == "world":
        from fakestudio.world.base import world_dir

        return from_dir(world_dir() / "tokenizer"), "world", None
    if base == "tiny":
        from fakestudio.tiny import byte_tokenizer, tiny_dir

        found = pick(tiny_dir())
        if found is not None:
            return from_dir(found), "tiny", None
        return byte_tokenizer(), "tiny", None
    path = Path(base).expanduser()
    if path.is_dir():
        found = pick(path)
        if found is None:
            raise UserError(f"--base {base}: no tokenizer/ folder there; pass --tokenizer DIR")
        return from_dir(found), path.resolve().name, None
    if path.is_file():
        bpe = installed_clip_bpe()
        if bpe is not None:
            return clip_tokenizer_from_bpe(bpe), "CLIP", None
        return (
            None,
            path.name,
            (
                f"--base {path.name} carries no tokenizer: the token was not checked against its "
                "vocabulary (pass --tokenizer DIR)"
            ),
        )
    from fakestudio.models import hub_cached_folder, looks_like_path

    if looks_like_path(base):
        raise UserError(f"--base {base}: base model not found (no such file or folder)")
    folder = hub_cached_folder(base)
    found = pick(folder) if folder is not None else None
    if found is None:
        raise UserError(
            f"--base {base}: not in the local Hugging Face cache (fakestudio never downloads); "
            "pass a local diffusers folder or --tokenizer DIR"
        )
    return from_dir(found), base, None
