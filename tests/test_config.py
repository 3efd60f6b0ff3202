import pytest

from synthloop.config import RecipeError, load_recipe, parse_recipe


def test_default_recipe_loads_and_hash_is_stable():
    recipe = load_recipe()
    assert recipe.rounds >= 1 and len(recipe.skills) >= 5
    assert recipe.hash() == load_recipe().hash()


BASE = "name: t\nskills: {addition: {difficulty: 1}}\n"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (BASE + "grounding: {ratoi: 0.2}", "unknown key 'grounding.ratoi'; did you mean 'grounding.ratio'?"),
        (BASE + "rounsd: 3", "did you mean 'rounds'?"),
        ("name: t\nskills: {additoin: {difficulty: 1}}", "unknown skill 'additoin'; did you mean 'addition'?"),
        ("name: t\nskills: {addition: {difficulty: 7}}", "skills.addition.difficulty"),
        ("name: t\nskills: {addition: {dificulty: 2}}", "did you mean 'skills.addition.difficulty'?"),
        (BASE + "teacher: {backend: oracel}", "unknown teacher backend 'oracel'; did you mean 'oracle'?"),
        (BASE + "grounding: {ratio: 1.5}", "grounding.ratio"),
        (BASE + "student: {train: {steps_per_round: many}}", "student.train.steps_per_round"),
        ("skills: {addition: {}}", "missing key 'name'"),
        ("name: t\nskills: {}", "list at least one skill"),
        ("name: t\nskills: [addition", "line"),
        ("- just\n- a list", "a recipe is a YAML mapping"),
    ],
)
def test_bad_recipes_name_the_key(text, expected):
    with pytest.raises(RecipeError) as err:
        parse_recipe(text, "r.yaml")
    message = str(err.value)
    assert expected in message
    assert message.startswith("r.yaml")
    assert "\n" not in message


def test_missing_recipe_file(tmp_path):
    with pytest.raises(RecipeError, match="not found"):
        load_recipe(tmp_path / "nope.yaml")


def test_a_key_merged_in_may_be_overridden_but_not_written_twice():
    """YAML merge keys (`<<: *base`) are for overriding; a key written twice in one mapping is a mistake."""
    recipe = parse_recipe(BASE + "teacher: {<<: {backend: oracle, noise: 0.1}, noise: 0.3}\n", "r.yaml")
    assert recipe.teacher.noise == 0.3
    with pytest.raises(RecipeError, match="key 'noise' appears twice"):
        parse_recipe(BASE + "teacher: {backend: oracle, noise: 0.1, noise: 0.3}\n", "r.yaml")


def test_an_integer_is_a_valid_float_and_a_date_is_not_a_name():
    recipe = parse_recipe(BASE + "generation: {temperature: 1}\nallocation: {sharpness: 3}\n", "r.yaml")
    assert recipe.generation.temperature == 1.0 and isinstance(recipe.generation.temperature, float)
    with pytest.raises(RecipeError, match=r"name: Input should be a valid string \(got datetime.date\(2024, 1, 1\)\)"):
        parse_recipe("name: 2024-01-01\nskills: {addition: {}}\n", "r.yaml")


def test_scientific_notation_is_a_number_as_in_yaml_1_2_but_quoted_it_is_text():
    recipe = parse_recipe(BASE + "student: {train: {learning_rate: 1e-3, weight_decay: 1E-2}}\n", "r.yaml")
    assert recipe.student.train.learning_rate == 0.001 and recipe.student.train.weight_decay == 0.01
    with pytest.raises(RecipeError, match=r"student\.train\.learning_rate: Input should be a valid number"):
        parse_recipe(BASE + "student: {train: {learning_rate: '1e-3'}}\n", "r.yaml")
