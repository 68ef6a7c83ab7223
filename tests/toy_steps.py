"""Small steps and a two-step pipeline used to test the framework and the command line."""

from calwebb import datamodels
from calwebb.stpipe import Pipeline, Step, registry


class AddStep(Step):
    """Add a constant (records its status as S_GRPSCL through cal_step_attr)."""

    class_alias = "toy_add"
    cal_step_attr = "group_scale"
    spec = """
        amount = float(default=1.0)  # value added to every pixel
    """
    input_model_class = datamodels.ImageModel

    def process(self, model):
        model.data += self.amount
        self.set_status(model, "COMPLETE")
        return model


class ScaleStep(Step):
    """Multiply by a factor; reads a (never needed) gain reference only when asked."""

    class_alias = "toy_scale"
    cal_step_attr = "gain_scale"
    spec = """
        factor = float(default=2.0)  # multiplier
    """
    reference_file_types = ["gain"]
    input_model_class = datamodels.ImageModel

    def process(self, model):
        model.data *= self.factor
        self.set_status(model, "COMPLETE")
        return model


class SplitStep(Step):
    """Return two models, as ramp_fit returns rate and rateints."""

    class_alias = "toy_split"
    input_model_class = datamodels.ImageModel

    def process(self, model):
        return model, model.copy()


class ToyPipeline(Pipeline):
    """add, then scale."""

    class_alias = "calwebb_toy"
    spec = """
        note = string(default='x')  # a pipeline-level parameter
    """
    step_defs = {"add": AddStep, "scale": ScaleStep}

    def process(self, model):
        model = self.add.run(model)
        return self.scale.run(model)


for cls in (AddStep, ScaleStep, SplitStep, ToyPipeline):
    registry.register(cls)
