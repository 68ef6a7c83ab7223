"""ChargeMigrationStep: exclude groups where charge spills to neighbours (off by default)."""

from calwebb import datamodels
from calwebb.charge_migration.flag import flag_charge_migration
from calwebb.stpipe import Step


class ChargeMigrationStep(Step):
    """Flag CHARGELOSS|DO_NOT_USE from the first group above signal_threshold onwards."""

    class_alias = "charge_migration"
    spec = """
        signal_threshold = float(default=25000.0)  # DN above which charge migrates
        skip = boolean(default=True)
    """
    input_model_class = datamodels.RampModel

    def process(self, model):
        flag_charge_migration(model.data, model.groupdq, self.signal_threshold)
        self.set_status(model, "COMPLETE")
        return model
