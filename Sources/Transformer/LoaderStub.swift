public enum ModelLoader {}
