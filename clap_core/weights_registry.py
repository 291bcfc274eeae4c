"""Named weights: what `load_model("<name>")` resolves to, and where to get what is not shipped."""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from .errors import CheckpointError, UnknownWeightsError

PACKAGE_WEIGHTS = Path(__file__).parent / "weights"


@dataclass(frozen=True)
class NamedWeights:
    name: str
    description: str
    filename: str  # file or folder name looked up in the search path
    shipped: bool  # inside this package (always offline) or downloaded by the user
    how_to_get: str = ""
    # Where `clap-weights download` fetches it: a Hugging Face repo, and (repo file, local name)
    # pairs; no files = the whole repo into the `filename` folder.
    repo: str = ""
    files: tuple[tuple[str, str], ...] = ()
    extra: tuple[tuple[str, str, str], ...] = ()  # (repo, repo file, local name) fetched alongside


NAMED_WEIGHTS: dict[str, NamedWeights] = {
    "default": NamedWeights("default", "embedded offline model (YAMNet + MiniLM towers, trained projections)",
                            "default", shipped=True),
    "msclap-2022": NamedWeights(
        "msclap-2022", "Microsoft CLAP 2022 (CNN14 + BERT-base), the paper's model", "CLAP_weights_2022.pth",
        shipped=False,
        how_to_get=("download CLAP_weights_2022.pth from the Hugging Face repo microsoft/msclap into "
                    "$CLAP_WEIGHTS_DIR (default ~/.cache/clap_ros), or pass its path as weights"),
        repo="microsoft/msclap", files=(("CLAP_weights_2022.pth", "CLAP_weights_2022.pth"),),
    ),
    "msclap-2023": NamedWeights(
        "msclap-2023", "Microsoft CLAP 2023 (HTS-AT + GPT-2, 7-s clips)", "CLAP_weights_2023.pth",
        shipped=False,
        how_to_get=("download CLAP_weights_2023.pth from the Hugging Face repo microsoft/msclap into "
                    "$CLAP_WEIGHTS_DIR (default ~/.cache/clap_ros), with GPT-2's vocab.json and merges.txt "
                    "in its gpt2/ subfolder, or pass its path as weights"),
        repo="microsoft/msclap", files=(("CLAP_weights_2023.pth", "CLAP_weights_2023.pth"),),
        extra=(("openai-community/gpt2", "vocab.json", "gpt2/vocab.json"),
               ("openai-community/gpt2", "merges.txt", "gpt2/merges.txt")),
    ),
    "laion-clap-htsat-unfused": NamedWeights(
        "laion-clap-htsat-unfused", "LAION-CLAP HTS-AT + RoBERTa (transformers ClapModel, 10-s clips)",
        "laion--clap-htsat-unfused", shipped=False,
        how_to_get=("save laion/clap-htsat-unfused (ClapModel + ClapProcessor, save_pretrained) into "
                    "$CLAP_WEIGHTS_DIR/laion--clap-htsat-unfused (default ~/.cache/clap_ros)"),
        repo="laion/clap-htsat-unfused",
    ),
    "laion-larger-clap-general": NamedWeights(
        "laion-larger-clap-general", "LAION-CLAP larger, general audio (transformers ClapModel, 10-s clips)",
        "laion--larger_clap_general", shipped=False,
        how_to_get=("save laion/larger_clap_general (ClapModel + ClapProcessor, save_pretrained) into "
                    "$CLAP_WEIGHTS_DIR/laion--larger_clap_general (default ~/.cache/clap_ros)"),
        repo="laion/larger_clap_general",
    ),
}


def weights_search_path() -> list[Path]:
    """Folders searched for downloaded weights, first match wins."""
    folders = [Path(p) for p in os.environ.get("CLAP_WEIGHTS_DIR", "").split(os.pathsep) if p]
    return folders + [Path.home() / ".cache" / "clap_ros"]


def resolve_weights(weights: str | os.PathLike) -> Path:
    """A registered name or a path → the file or folder to load. Errors say what to do."""
    text = str(weights)
    if text in NAMED_WEIGHTS:
        entry = NAMED_WEIGHTS[text]
        if entry.shipped:
            folder = PACKAGE_WEIGHTS / entry.filename
            if not (folder / "model.safetensors").is_file():
                raise CheckpointError(f"weights '{text}': not present in this install ({folder}); "
                                      "rebuild it with the recipe in docs/ or reinstall the package")
            return folder
        for folder in weights_search_path():
            if (folder / entry.filename).exists():
                return folder / entry.filename
        raise CheckpointError(f"weights '{text}': {entry.filename} not found; {entry.how_to_get}")
    path = Path(text).expanduser()
    if path.exists():
        return path
    raise UnknownWeightsError(f"weights '{text}': neither a registered name "
                              f"({', '.join(sorted(NAMED_WEIGHTS))}) nor an existing file or folder")
