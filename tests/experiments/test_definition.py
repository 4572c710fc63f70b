"""Experiment definitions are checked up front, before anything runs or touches a store."""

import pytest
from experiment_setups import digits_setup, quadratic_setup

from deeptoolbox.errors import OptionError
from deeptoolbox.experiments import (
    Choice,
    Experiment,
    Integer,
    StoreError,
    Uniform,
    parameters_from_dict,
)
from deeptoolbox.experiments._parameters import ParameterTable


def make(tmp_path, parameters=None, **options):
    options.setdefault("store", tmp_path / "e.db")
    return Experiment("exp", options.pop("setup", quadratic_setup),
                      {"x": [0.1, 0.2]} if parameters is None else parameters, **options)  # fmt: skip


def test_unknown_strategy_names_the_allowed_ones(tmp_path):
    with pytest.raises(OptionError, match="'exhaustive', 'random', 'bayesian'.*grid"):
        make(tmp_path, strategy="grid")


def test_parameter_with_no_values_is_named(tmp_path):
    with pytest.raises(OptionError, match="parameter 'lr' has no values"):
        make(tmp_path, {"x": [1, 2], "lr": []})


def test_empty_parameter_table(tmp_path):
    with pytest.raises(OptionError, match="`parameters` is empty"):
        make(tmp_path, {})


def test_distribution_with_exhaustive_strategy_suggests_a_list(tmp_path):
    with pytest.raises(OptionError, match="'lr' is a distribution.*list or range"):
        make(tmp_path, {"lr": Uniform(1e-3, 1e-1, log=True)})


def test_setup_signature_must_fit(tmp_path):
    def three(a, b, c):
        return {}

    with pytest.raises(OptionError, match=r"\(params\).*\(params, monitor\).*\(a, b, c\)"):
        make(tmp_path, setup=three)
    with pytest.raises(OptionError, match="must be a function"):
        make(tmp_path, setup="setup.py")


def test_store_in_a_missing_folder_is_a_clear_error(tmp_path):
    missing = tmp_path / "no-such-folder" / "e.db"
    with pytest.raises(StoreError, match="folder that does not exist") as caught:
        make(tmp_path, store=missing)
    assert str(missing.parent) in str(caught.value)
    assert not missing.parent.exists()


@pytest.mark.parametrize(
    ("options", "message"),
    [({"strategy": "random"}, "needs `trials`"),
     ({"strategy": "bayesian"}, "`trials` or `max_time`"),
     ({"trials": 3}, "leave `trials` unset"),
     ({"strategy": "random", "trials": 0}, "positive int"),
     ({"direction": "up"}, "'maximize' or 'minimize'"),
     ({"max_time": -1}, "positive number of seconds"),
     ({"pruner": "hyperband"}, "'median' or an Optuna pruner"),
     ({"constraints": [1]}, "functions of the parameter dict")],
)  # fmt: skip
def test_bad_options(tmp_path, options, message):
    with pytest.raises(OptionError, match=message):
        make(tmp_path, **options)


def test_names_must_make_folder_names(tmp_path):
    with pytest.raises(OptionError, match="`name`"):
        Experiment("../up", quadratic_setup, {"x": [1]}, store=tmp_path / "e.db")


def test_values_must_be_plain_and_distinct(tmp_path):
    with pytest.raises(OptionError, match="numbers, strings, booleans or None"):
        make(tmp_path, {"layers": [(8, 16), (16, 32)]})
    with pytest.raises(OptionError, match="must differ"):
        make(tmp_path, {"x": [1, 1]})


def test_distribution_checks():
    with pytest.raises(OptionError, match="below `high`"):
        Uniform(1.0, 0.5)
    with pytest.raises(OptionError, match="> 0 with log=True"):
        Uniform(0.0, 1.0, log=True)
    with pytest.raises(OptionError, match="ints with low < high"):
        Integer(1.5, 3)
    with pytest.raises(OptionError, match="no values"):
        Choice([])


def test_table_grid_fixed_values_constraints_and_round_trip():
    table = ParameterTable(
        {"filters": [8, 16], "lr": range(1, 4), "epochs": 2, "solver": "adam"}, "exhaustive"
    )
    assert table.fixed == {"epochs": 2, "solver": "adam"}
    assert len(table.grid()) == 6
    kept = table.grid([lambda p: p["filters"] * p["lr"] <= 16, lambda p: p["epochs"] == 2])
    assert kept == [{"filters": 8, "lr": 1}, {"filters": 8, "lr": 2}, {"filters": 16, "lr": 1}]
    again = ParameterTable.from_dict(table.to_dict(), "exhaustive")
    assert again.to_dict() == table.to_dict() and again.grid() == table.grid()


def test_lists_become_choices_for_random_and_bayesian():
    table = ParameterTable({"solver": ["adam", "sgdm"], "lr": Uniform(1e-3, 1e-1, log=True),
                            "units": Integer(8, 64, log=True)}, "bayesian")  # fmt: skip
    assert table.swept["solver"] == Choice(["adam", "sgdm"])
    kinds = {n: type(d).__name__ for n, d in table.distributions().items()}
    assert kinds == {"solver": "CategoricalDistribution", "lr": "FloatDistribution",
                     "units": "IntDistribution"}  # fmt: skip
    assert ParameterTable.from_dict(table.to_dict(), "bayesian").to_dict() == table.to_dict()


def test_definition_touches_no_store(tmp_path):
    make(tmp_path, setup=digits_setup, parameters={"filters": [4], "lr": [0.01]})
    assert list(tmp_path.iterdir()) == []


def test_parameters_from_their_json_description_round_trip():
    parameters = {"lr": Uniform(1e-4, 1e-1, log=True), "width": Integer(8, 64, step=8),
                  "act": Choice(["relu", "gelu"]), "depth": 3}  # fmt: skip
    table = ParameterTable(parameters, "random")
    assert parameters_from_dict(table.to_dict()) == parameters
    assert parameters_from_dict({"x": [1, 2]}) == {"x": [1, 2]}


@pytest.mark.parametrize(
    ("spec", "names"),
    [({"type": "gauss"}, "kind one of values, uniform"), ({"type": "integer", "low": 1}, "'high'"),
     ({"type": "uniform", "low": 0, "high": 1, "scale": 2}, "'scale'"), (3, "a list of values")],
)  # fmt: skip
def test_bad_parameter_descriptions_name_the_parameter(spec, names):
    with pytest.raises(OptionError, match="parameter 'x'") as info:
        parameters_from_dict({"x": spec})
    assert names in str(info.value)
