"""The shared skeleton vocabulary: joint layouts, clip operations, the model card. numpy only."""
